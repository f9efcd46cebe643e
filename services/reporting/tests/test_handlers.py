"""Reporting's handlers on fakes (an in-memory event store and unit of work, in-memory case files): given the case's
report stream and the cases reporting knows, when a command (the desk's, or one another service's event becomes),
then the events appended, what the outbox would publish and what is kept beside the stream."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Actor, CommandContext
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from reporting.bootstrap import bind_handlers
from reporting.commands import (
    DraftReport,
    EraseReportTexts,
    FinalizeReport,
    NoteConsultation,
    NotePayment,
    RecordDelivery,
)
from reporting.repository import EVENT_TYPES
from reporting.testing import Case, InMemoryCaseFiles
from secondopinion_contracts.codes import DeliveryChannel, Mode
from secondopinion_contracts.events.reporting import CaseClosed, ReportDelivered, ReportDrafted, ReportFinalized

CONSULTED_ON = date(2026, 12, 8)
CASE = Case("cardiology", Mode.IN_PERSON)
PHYSICIAN = CommandContext(actor=Actor(id="dr-sato", role="physician"), correlation_id=str(CASE.case_id))


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore("reporting", EVENT_TYPES)


@pytest.fixture
def files() -> InMemoryCaseFiles:
    return InMemoryCaseFiles()


async def handle(store: InMemoryEventStore, files: InMemoryCaseFiles, command: object) -> object:
    handlers = bind_handlers(lambda: datetime(2026, 12, 8, 3, 0, tzinfo=UTC), files)
    return await handlers[type(command)](command, InMemoryUnitOfWork(store, PHYSICIAN))


def consulted() -> NoteConsultation:
    return NoteConsultation(case_id=CASE.case_id, appointment_id=CASE.appointment_id, mode=Mode.IN_PERSON,
                            consulted_on=CONSULTED_ON)


def draft(summary: str = "Catheter treatment first.") -> DraftReport:
    return DraftReport(case_id=CASE.case_id, report_id=uuid.uuid4(), physician_id="dr-sato", summary=summary)


async def test_a_report_is_drafted_finalized_delivered_and_the_paid_case_closes_once(
        store: InMemoryEventStore, files: InMemoryCaseFiles) -> None:
    await handle(store, files, consulted())
    await handle(store, files, NotePayment(case_id=CASE.case_id, invoice_id=CASE.invoice_id, amount=CASE.total))
    await handle(store, files, draft())
    await handle(store, files, FinalizeReport(case_id=CASE.case_id))
    await handle(store, files, RecordDelivery(case_id=CASE.case_id, channel=DeliveryChannel.HANDED_TO_PATIENT))
    published = [envelope.type for envelope in store.outbox]
    assert published == [ReportDrafted.type_name(), ReportFinalized.type_name(), ReportDelivered.type_name(),
                         CaseClosed.type_name()]
    assert files.drafts == {(CASE.case_id, 1): "Catheter treatment first."}
    assert files.locked == [CASE.case_id] * 5, "every writer about the case takes its lock first"


async def test_a_draft_before_the_consultation_is_refused_and_keeps_no_text(
        store: InMemoryEventStore, files: InMemoryCaseFiles) -> None:
    files.known_cases.add(CASE.case_id)  # its submission reached reporting
    with pytest.raises(CommandRejected) as refused:
        await handle(store, files, draft())
    assert refused.value.code == "no_consultation"
    assert store.new_events() == []
    assert files.drafts == {}


async def test_a_case_reporting_never_heard_of_is_not_found(store: InMemoryEventStore,
                                                            files: InMemoryCaseFiles) -> None:
    with pytest.raises(NotFound):
        await handle(store, files, FinalizeReport(case_id=CASE.case_id))


async def test_an_erasure_forgets_every_draft_text_of_the_case(store: InMemoryEventStore,
                                                               files: InMemoryCaseFiles) -> None:
    await handle(store, files, consulted())
    await handle(store, files, draft("first"))
    await handle(store, files, draft("second"))
    await handle(store, files, EraseReportTexts(case_id=CASE.case_id, erased_on=date(2031, 12, 9)))
    assert files.drafts == {(CASE.case_id, 1): None, (CASE.case_id, 2): None}
