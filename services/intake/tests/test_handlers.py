"""Intake's handlers on fakes (an in-memory event store and unit of work): given events, when a command, then the
events appended and what the outbox would publish. The handlers that seal personal data (SQL on the unit of work's
connection) are covered on the real database by test_api.py."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Actor, CommandContext
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from intake.bootstrap import bind_handlers
from intake.commands import ReceiveDocument, ScreenCase, WithdrawCase
from intake.repository import CASES, EVENT_TYPES, STREAM_TYPE
from intake.settings import IntakeSettings
from secondopinion_contracts.codes import DocumentKind, Mode, Relationship, WithdrawalReason
from secondopinion_contracts.events.intake import CaseSubmitted, CaseWithdrawn, DocumentReceived

CASE_ID = uuid.uuid4()
HANDLERS = bind_handlers(IntakeSettings(), lambda: datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
CONTEXT = CommandContext(actor=Actor(id="coord-1", role="coordinator"), correlation_id=str(CASE_ID))


def submitted() -> CaseSubmitted:
    return CaseSubmitted(case_id=CASE_ID, mode=Mode.IN_PERSON, department="cardiology",
                         requester_relationship=Relationship.SELF, patient_is_minor=False, patient_deceased=False,
                         attending_physician_consents=True, wants_treatment_here=False, complaint_or_litigation=False,
                         submitted_on=date(2026, 12, 1))


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore("intake", EVENT_TYPES)


async def handle(store: InMemoryEventStore, command: object) -> None:
    await HANDLERS[type(command)](command, InMemoryUnitOfWork(store, CONTEXT))


async def test_a_withdrawal_appends_the_event_and_publishes_it_with_the_desks_context(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    await handle(store, WithdrawCase(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST))
    assert store.new_events() == [CaseWithdrawn(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST)]
    [published] = store.outbox
    assert (published.type, published.actorid, published.correlationid) == (
        CaseWithdrawn.type_name(), "coord-1", str(CASE_ID))


async def test_a_withdrawn_case_refuses_a_second_withdrawal_and_appends_nothing(store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE,
                [submitted(), CaseWithdrawn(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST)])
    with pytest.raises(CommandRejected):
        await handle(store, WithdrawCase(case_id=CASE_ID, reason=WithdrawalReason.OTHER))
    assert store.new_events() == []
    assert store.outbox == []


@pytest.mark.parametrize("command", [
    ReceiveDocument(case_id=CASE_ID, document_id=uuid.uuid4(), kind=DocumentKind.REFERRAL_LETTER,
                    received_on=date(2026, 12, 1)),
    ScreenCase(case_id=CASE_ID, accept=True, physician="dr-screen"),
    WithdrawCase(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST),
])
async def test_commands_on_a_case_never_submitted_are_not_found(store: InMemoryEventStore, command: object) -> None:
    with pytest.raises(NotFound):
        await handle(store, command)
    assert store.new_events() == []


async def test_a_document_is_appended_after_the_submission(store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    document = ReceiveDocument(case_id=CASE_ID, document_id=uuid.uuid4(), kind=DocumentKind.REFERRAL_LETTER,
                               received_on=date(2026, 12, 2))
    await handle(store, document)
    received = [event for event in store.new_events() if isinstance(event, DocumentReceived)]
    assert received == [DocumentReceived(case_id=CASE_ID, document_id=document.document_id,
                                         kind=DocumentKind.REFERRAL_LETTER, received_on=date(2026, 12, 2))]
