"""Intake's handlers on fakes (an in-memory event store and unit of work, in-memory personal data): given events, when
a command, then the events appended, what the outbox would publish and what happened to the personal data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from uuid import UUID

import pytest

from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Actor, CommandContext
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.unit_of_work import UnitOfWork
from intake.bootstrap import bind_handlers
from intake.commands import (
    ApproveErasure,
    ErasePersonalData,
    Person,
    PostalAddress,
    ReceiveDocument,
    RequestErasure,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from intake.repository import CASES, EVENT_TYPES, STREAM_TYPE
from intake.search import case_number
from intake.settings import IntakeSettings
from secondopinion_contracts.codes import DocumentKind, Mode, Relationship, WithdrawalReason
from secondopinion_contracts.events.intake import CaseSubmitted, CaseWithdrawn, DocumentReceived, PersonalDataErased

CASE_ID = uuid.uuid4()
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@dataclass
class InMemoryPersonalData:
    """intake.repository.PersonalData in memory: what was kept, and the keys erased."""

    kept: dict[UUID, SubmitCase] = field(default_factory=dict)
    erased: dict[UUID, tuple[str, datetime]] = field(default_factory=dict)

    async def keep(self, uow: UnitOfWork, command: SubmitCase) -> str:
        self.kept[command.case_id] = command
        return "c2VhbGVk"

    async def erase(self, uow: UnitOfWork, case_id: UUID, erased_by: str, erased_at: datetime) -> None:
        self.erased[case_id] = (erased_by, erased_at)


@dataclass
class InMemoryErasureRequests:
    """intake.repository.ErasureRequests in memory: case -> (requested by, requested on)."""

    waiting: dict[UUID, tuple[str, date]] = field(default_factory=dict)

    async def add(self, uow: UnitOfWork, case_id: UUID, requested_by: str, requested_on: date) -> bool:
        if case_id in self.waiting:
            return False
        self.waiting[case_id] = (requested_by, requested_on)
        return True

    async def requester(self, uow: UnitOfWork, case_id: UUID) -> str | None:
        waiting = self.waiting.get(case_id)
        return waiting[0] if waiting else None

    async def remove(self, uow: UnitOfWork, case_id: UUID) -> None:
        self.waiting.pop(case_id, None)


@dataclass
class InMemoryCaseNumbers:
    """intake.repository.CaseNumbers in memory: the last sequence of each year, and each case's number."""

    last: dict[int, int] = field(default_factory=dict)
    numbers: dict[UUID, str] = field(default_factory=dict)

    async def assign(self, uow: UnitOfWork, case_id: UUID, submitted_on: date) -> str:
        self.last[submitted_on.year] = self.last.get(submitted_on.year, 0) + 1
        self.numbers[case_id] = case_number(submitted_on.year, self.last[submitted_on.year])
        return self.numbers[case_id]


PERSONAL_DATA = InMemoryPersonalData()
ERASURE_REQUESTS = InMemoryErasureRequests()
CASE_NUMBERS = InMemoryCaseNumbers()
HANDLERS = bind_handlers(IntakeSettings(), lambda: NOW, PERSONAL_DATA, ERASURE_REQUESTS, CASE_NUMBERS)
CONTEXT = CommandContext(actor=Actor(id="coord-1", role="coordinator"), correlation_id=str(CASE_ID))


def submitted() -> CaseSubmitted:
    return CaseSubmitted(case_id=CASE_ID, mode=Mode.IN_PERSON, department="cardiology",
                         requester_relationship=Relationship.SELF, patient_is_minor=False, patient_deceased=False,
                         attending_physician_consents=True, wants_treatment_here=False, complaint_or_litigation=False,
                         submitted_on=date(2026, 12, 1))


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore("intake", EVENT_TYPES)


async def handle(store: InMemoryEventStore, command: object, context: CommandContext = CONTEXT) -> None:
    await HANDLERS[type(command)](command, InMemoryUnitOfWork(store, context))


def privacy_officer(staff_id: str) -> CommandContext:
    return CommandContext(actor=Actor(id=staff_id, role="privacy_officer"), correlation_id=str(CASE_ID))


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



async def test_a_second_document_of_a_kind_is_recorded_as_a_copy_of_the_first(store: InMemoryEventStore) -> None:
    first = DocumentReceived(case_id=CASE_ID, document_id=uuid.uuid4(), kind=DocumentKind.TEST_RESULTS,
                             received_on=date(2026, 12, 2))
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted(), first])
    again = ReceiveDocument(case_id=CASE_ID, document_id=uuid.uuid4(), kind=DocumentKind.TEST_RESULTS,
                            received_on=date(2026, 12, 3))
    await handle(store, again)
    assert store.new_events() == [DocumentReceived(case_id=CASE_ID, document_id=again.document_id,
                                                   kind=DocumentKind.TEST_RESULTS, received_on=date(2026, 12, 3),
                                                   copy_of=first.document_id)]

def submission(department: str = "cardiology") -> SubmitCase:
    return SubmitCase(
        case_id=CASE_ID, requester_relationship=Relationship.SELF, requester=Person(name="Hanako Zzyzx"),
        patient_name="Hanako Zzyzx", patient_birth_date=date(1968, 4, 1), patient_deceased=False,
        patient_consents=None, mode=Mode.IN_PERSON, department=department, question="Surgery or catheter?",
        attending_physician_name="Dr. Sato", attending_institution="Minato Clinic",
        attending_physician_consents=True, wants_treatment_here=False, complaint_or_litigation=False,
        submitted_on=date(2026, 12, 1))


async def test_a_submission_keeps_the_personal_data_aside_and_publishes_the_sealed_payer_name_only(
        store: InMemoryEventStore) -> None:
    await handle(store, submission())
    [submitted_event, *_] = store.new_events()
    assert isinstance(submitted_event, CaseSubmitted)
    assert submitted_event.payer_name_sealed == "c2VhbGVk"
    assert PERSONAL_DATA.kept[CASE_ID] == submission()
    assert "Hanako" not in store.outbox[0].model_dump_json()



async def test_a_submission_is_numbered_in_its_years_order_and_the_number_never_goes_into_the_event(
        store: InMemoryEventStore) -> None:
    first, second, next_year = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await handle(store, replace(submission(), case_id=first, submitted_on=date(2030, 12, 31)))
    await handle(store, replace(submission(), case_id=second, submitted_on=date(2030, 12, 31)))
    await handle(store, replace(submission(), case_id=next_year, submitted_on=date(2031, 1, 1)))
    assert [CASE_NUMBERS.numbers[case] for case in (first, second, next_year)] == [
        "SO-2030-00001", "SO-2030-00002", "SO-2031-00001"]
    assert "SO-20" not in " ".join(message.model_dump_json() for message in store.outbox)


async def test_a_refused_submission_takes_no_number(store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    taken = dict(CASE_NUMBERS.last)
    with pytest.raises(CommandRejected):
        await handle(store, replace(submission(), submitted_on=date(2040, 1, 6)))
    assert CASE_NUMBERS.last == taken


async def test_the_postal_addresses_go_to_the_personal_data_and_never_into_the_event(
        store: InMemoryEventStore) -> None:
    # The slip and the report are posted to these addresses; they are personal data, kept sealed beside the stream.
    command = replace(submission(), patient_postal_address=PostalAddress("980-8574", "仙台市青葉区 Zzyzx棟"),
                      attending_institution_address=PostalAddress("105-0011", "東京都港区 Canary Clinic"))
    await handle(store, command)
    kept = PERSONAL_DATA.kept[CASE_ID]
    assert (kept.patient_postal_address, kept.attending_institution_address) == (
        command.patient_postal_address, command.attending_institution_address)
    published = " ".join(message.model_dump_json() for message in store.outbox)
    for text in ("980-8574", "Zzyzx棟", "105-0011", "Canary Clinic"):
        assert text not in published
        assert text not in repr(store.new_events())

async def test_the_erasure_after_the_retention_period_destroys_the_key_with_the_event(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    await handle(store, ErasePersonalData(case_id=CASE_ID, requested_on=date(2036, 12, 2)))
    assert store.new_events() == [PersonalDataErased(case_id=CASE_ID, erased_on=date(2036, 12, 2))]
    assert PERSONAL_DATA.erased[CASE_ID] == ("coord-1", NOW)


async def test_an_erasure_within_the_retention_period_is_refused_and_keeps_the_key(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    PERSONAL_DATA.erased.pop(CASE_ID, None)
    with pytest.raises(CommandRejected) as refused:
        await handle(store, ErasePersonalData(case_id=CASE_ID, requested_on=date(2027, 12, 1)))
    assert refused.value.code == "retention_period"
    assert CASE_ID not in PERSONAL_DATA.erased
    assert store.new_events() == []


async def test_an_erasure_request_waits_for_a_second_privacy_officer_and_appends_nothing(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    ERASURE_REQUESTS.waiting.clear()
    PERSONAL_DATA.erased.pop(CASE_ID, None)
    await handle(store, RequestErasure(case_id=CASE_ID, requested_on=date(2036, 12, 2)), privacy_officer("po-1"))
    assert store.new_events() == []
    assert ERASURE_REQUESTS.waiting[CASE_ID] == ("po-1", date(2036, 12, 2))
    assert CASE_ID not in PERSONAL_DATA.erased
    with pytest.raises(CommandRejected) as again:
        await handle(store, RequestErasure(case_id=CASE_ID, requested_on=date(2036, 12, 2)), privacy_officer("po-2"))
    assert again.value.code == "already_requested"


async def test_an_erasure_request_within_the_retention_period_is_refused_and_not_kept(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    ERASURE_REQUESTS.waiting.clear()
    with pytest.raises(CommandRejected) as refused:
        await handle(store, RequestErasure(case_id=CASE_ID, requested_on=date(2027, 12, 1)), privacy_officer("po-1"))
    assert refused.value.code == "retention_period"
    assert ERASURE_REQUESTS.waiting == {}


async def test_a_second_privacy_officer_approves_and_the_case_is_erased_with_the_request_taken(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    ERASURE_REQUESTS.waiting.clear()
    ERASURE_REQUESTS.waiting[CASE_ID] = ("po-1", date(2036, 12, 1))
    await handle(store, ApproveErasure(case_id=CASE_ID, approved_on=date(2036, 12, 2)), privacy_officer("po-2"))
    assert store.new_events() == [PersonalDataErased(case_id=CASE_ID, erased_on=date(2036, 12, 2))]
    assert PERSONAL_DATA.erased[CASE_ID] == ("po-2", NOW)
    assert ERASURE_REQUESTS.waiting == {}


@pytest.mark.parametrize(("waiting", "code"), [(None, "not_requested"), ("po-1", "own_request")])
async def test_an_approval_without_a_request_or_of_ones_own_is_refused_and_erases_nothing(
        store: InMemoryEventStore, waiting: str | None, code: str) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    ERASURE_REQUESTS.waiting.clear()
    PERSONAL_DATA.erased.pop(CASE_ID, None)
    if waiting is not None:
        ERASURE_REQUESTS.waiting[CASE_ID] = (waiting, date(2036, 12, 1))
    with pytest.raises(CommandRejected) as refused:
        await handle(store, ApproveErasure(case_id=CASE_ID, approved_on=date(2036, 12, 2)), privacy_officer("po-1"))
    assert refused.value.code == code
    assert store.new_events() == []
    assert CASE_ID not in PERSONAL_DATA.erased
