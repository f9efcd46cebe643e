"""Intake's handlers on fakes (an in-memory event store and unit of work, in-memory personal data): given events, when
a command, then the events appended, what the outbox would publish and what happened to the personal data."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Actor, CommandContext
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.unit_of_work import UnitOfWork
from intake.bootstrap import bind_handlers
from intake.commands import (
    ApproveErasure,
    CorrectCaseDetails,
    ErasePersonalData,
    Person,
    PostalAddress,
    ReceiveDocument,
    RecordContact,
    RequestErasure,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from intake.repository import CASES, EVENT_TYPES, STREAM_TYPE
from intake.search import case_number
from intake.settings import IntakeSettings
from secondopinion_contracts.codes import (
    ConsentBasis,
    ContactChannel,
    ContactDirection,
    CorrectedField,
    CorrectionReason,
    DeclineReason,
    DocumentKind,
    Mode,
    Relationship,
    Screening,
    WithdrawalReason,
)
from secondopinion_contracts.events.intake import (
    CaseAccepted,
    CaseDeclinedV2,
    CaseDetailsCorrected,
    CaseSubmitted,
    CaseWithdrawn,
    ConsentVerified,
    ContactRecorded,
    DocumentReceived,
    PersonalDataErased,
)

CASE_ID = uuid.uuid4()
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@dataclass
class InMemoryPersonalData:
    """intake.repository.PersonalData in memory: what was kept, and the keys erased."""

    kept: dict[UUID, SubmitCase] = field(default_factory=dict)
    erased: dict[UUID, tuple[str, datetime]] = field(default_factory=dict)
    # the sealed values as corrections leave them, and the notes of corrections and contacts by their id
    values: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    notes: dict[UUID, str] = field(default_factory=dict)

    async def keep(self, uow: UnitOfWork, command: SubmitCase) -> str:
        self.kept[command.case_id] = command
        return "c2VhbGVk"

    async def erase(self, uow: UnitOfWork, case_id: UUID, erased_by: str, erased_at: datetime) -> None:
        self.erased[case_id] = (erased_by, erased_at)

    async def changed(self, uow: UnitOfWork, case_id: UUID,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> list[CorrectedField]:
        person = self.values.get(case_id, {})
        return [name for name, values in corrections.items()
                if any(person.get(key) != value for key, value in values.items())]

    async def correct(self, uow: UnitOfWork, command: CorrectCaseDetails,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> None:
        for values in corrections.values():
            self.values.setdefault(command.case_id, {}).update(values)
        if command.note:
            self.notes[command.correction_id] = command.note

    async def keep_contact(self, uow: UnitOfWork, command: RecordContact) -> None:
        self.notes[command.contact_id] = command.note


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



async def test_a_submission_is_numbered_in_its_years_order_and_case_submitted_carries_the_number(
        store: InMemoryEventStore) -> None:
    first, second, next_year = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await handle(store, replace(submission(), case_id=first, submitted_on=date(2030, 12, 31)))
    await handle(store, replace(submission(), case_id=second, submitted_on=date(2030, 12, 31)))
    await handle(store, replace(submission(), case_id=next_year, submitted_on=date(2031, 1, 1)))
    assert [CASE_NUMBERS.numbers[case] for case in (first, second, next_year)] == [
        "SO-2030-00001", "SO-2030-00002", "SO-2031-00001"]
    submitted_events = [event for event in store.new_events() if isinstance(event, CaseSubmitted)]
    assert {event.case_id: event.case_number for event in submitted_events} == {
        first: "SO-2030-00001", second: "SO-2030-00002", next_year: "SO-2031-00001"}


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


def correction(**changes: Any) -> CorrectCaseDetails:
    return CorrectCaseDetails(case_id=CASE_ID, correction_id=uuid.uuid4(), reason=CorrectionReason.TYPING_ERROR,
                              corrected_on=date(2026, 12, 3), **changes)


def contact(**changes: Any) -> RecordContact:
    return RecordContact(**{"case_id": CASE_ID, "contact_id": uuid.uuid4(), "contacted_on": date(2026, 12, 2),
                            "direction": ContactDirection.INCOMING, "channel": ContactChannel.PHONE,
                            "note": "Zzyzx asked when the letter arrives", "handled_by": "coord-1",
                            "recorded_on": date(2026, 12, 3), **changes})


async def test_a_correction_seals_the_new_values_and_its_event_names_the_fields_and_reason_only(
        store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    PERSONAL_DATA.values[CASE_ID] = {"patient_name": "Hanako Zzyzx", "requester_phone": "03-1111-2222"}
    command = correction(patient_name="Hanako Zzyzx-Canary", requester_phone="03-1111-2222",
                         patient_postal_address=PostalAddress("980-8574", "仙台市 Canary棟"),
                         note="the application form spells it Zzyzx-Canary")
    await handle(store, command)
    assert store.new_events() == [CaseDetailsCorrected(
        case_id=CASE_ID, correction_id=command.correction_id, reason=CorrectionReason.TYPING_ERROR,
        fields=[CorrectedField.PATIENT_NAME, CorrectedField.PATIENT_POSTAL_ADDRESS], corrected_on=date(2026, 12, 3))]
    assert PERSONAL_DATA.values[CASE_ID] == {"patient_name": "Hanako Zzyzx-Canary", "requester_phone": "03-1111-2222",
                                             "patient_postal_code": "980-8574", "patient_address": "仙台市 Canary棟"}
    assert PERSONAL_DATA.notes[command.correction_id] == "the application form spells it Zzyzx-Canary"
    published = " ".join(message.model_dump_json() for message in store.outbox)
    for text in ("Zzyzx", "Canary", "980-8574", "application form"):
        assert text not in published
        assert text not in repr(store.new_events())
    [message] = store.outbox
    assert (message.type, message.actorid) == (CaseDetailsCorrected.type_name(), "coord-1")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"wants_treatment_here": True}, DeclineReason.SEEKS_TREATMENT_HERE),
    ({"complaint_or_litigation": True}, DeclineReason.COMPLAINT_OR_LITIGATION),
    ({"patient_deceased": True}, DeclineReason.PATIENT_DECEASED),
    ({"attending_physician_consents": False}, DeclineReason.ATTENDING_PHYSICIAN_NOT_CONSENTING),
])
async def test_a_corrected_fact_that_shows_a_refusal_reason_declines_the_case_at_once(
        store: InMemoryEventStore, changes: dict[str, Any], reason: DeclineReason) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    command = correction(**changes)
    await handle(store, command)
    corrected, declined = store.new_events()
    assert isinstance(corrected, CaseDetailsCorrected)
    assert [field.value for field in corrected.fields] == list(changes)
    assert corrected.model_dump(include=set(changes)) == changes
    assert declined == CaseDeclinedV2(case_id=CASE_ID, reasons=[reason], screening=Screening.AUTOMATIC)


async def test_a_correction_never_accepts_a_case_and_a_declined_case_is_not_corrected(
        store: InMemoryEventStore) -> None:
    declined = CaseDeclinedV2(case_id=CASE_ID, reasons=[DeclineReason.SEEKS_TREATMENT_HERE],
                              screening=Screening.AUTOMATIC)
    wants_treatment = submitted().model_copy(update={"wants_treatment_here": True})
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [wants_treatment, declined])
    with pytest.raises(CommandRejected) as refused:
        await handle(store, correction(wants_treatment_here=False))
    assert refused.value.code == "case_declined"
    assert store.new_events() == []


async def test_an_accepted_case_is_not_declined_by_a_correction_but_told_to_withdraw(
        store: InMemoryEventStore) -> None:
    accepted = CaseAccepted(case_id=CASE_ID, department="cardiology", mode=Mode.IN_PERSON, screened_by="dr-sato")
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted(), accepted])
    with pytest.raises(CommandRejected) as refused:
        await handle(store, correction(complaint_or_litigation=True))
    assert (refused.value.code, refused.value.details) == ("refusal_after_acceptance", ["complaint_or_litigation"])
    assert store.new_events() == []
    await handle(store, correction(attending_physician_name="Dr. Ichiro Satou"))
    assert [type(event) for event in store.new_events()] == [CaseDetailsCorrected]


async def test_a_birth_date_that_makes_the_patient_a_minor_is_decided_again_for_consent(
        store: InMemoryEventStore) -> None:
    family = submitted().model_copy(update={"requester_relationship": Relationship.FAMILY})
    proof = DocumentReceived(case_id=CASE_ID, document_id=uuid.uuid4(), kind=DocumentKind.RELATIONSHIP_PROOF,
                             received_on=date(2026, 12, 2))
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [family, proof])
    await handle(store, correction(patient_birth_date=date(2012, 5, 5)))
    corrected, verified = store.new_events()
    assert isinstance(corrected, CaseDetailsCorrected)
    assert (corrected.fields, corrected.patient_is_minor) == ([CorrectedField.PATIENT_BIRTH_DATE], True)
    assert verified == ConsentVerified(case_id=CASE_ID, basis=ConsentBasis.MINOR_WITH_RELATIONSHIP_PROOF)
    assert "2012" not in store.outbox[0].model_dump_json()


@pytest.mark.parametrize(("changes", "code"), [
    ({}, "nothing_to_correct"),
    ({"patient_name": "Hanako Zzyzx"}, "nothing_to_correct"),  # the value recorded already
    ({"wants_treatment_here": False}, "nothing_to_correct"),
    ({"patient_birth_date": date(2026, 12, 2)}, "invalid_birth_date"),
])
async def test_a_correction_that_changes_nothing_or_is_impossible_is_refused(
        store: InMemoryEventStore, changes: dict[str, Any], code: str) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    PERSONAL_DATA.values[CASE_ID] = {"patient_name": "Hanako Zzyzx"}
    with pytest.raises(CommandRejected) as refused:
        await handle(store, correction(**changes))
    assert refused.value.code == code
    assert store.new_events() == []
    assert PERSONAL_DATA.values[CASE_ID] == {"patient_name": "Hanako Zzyzx"}


async def test_nothing_is_corrected_or_logged_once_the_personal_data_is_erased(store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE,
                [submitted(), PersonalDataErased(case_id=CASE_ID, erased_on=date(2032, 12, 2))])
    for command in (correction(patient_name="X"), contact()):
        with pytest.raises(CommandRejected) as refused:
            await handle(store, command)
        assert refused.value.code == "already_erased"
    assert store.new_events() == []


async def test_a_contact_is_logged_with_its_note_sealed_and_only_its_facts_published(
        store: InMemoryEventStore) -> None:
    withdrawn = CaseWithdrawn(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST)
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted(), withdrawn])  # a closed case too
    command = contact()
    await handle(store, command)
    assert store.new_events() == [ContactRecorded(
        case_id=CASE_ID, contact_id=command.contact_id, contacted_on=date(2026, 12, 2),
        direction=ContactDirection.INCOMING, channel=ContactChannel.PHONE, handled_by="coord-1")]
    assert PERSONAL_DATA.notes[command.contact_id] == command.note
    assert "Zzyzx" not in store.outbox[0].model_dump_json()


async def test_a_contact_dated_after_today_or_on_no_case_is_refused(store: InMemoryEventStore) -> None:
    with pytest.raises(NotFound):
        await handle(store, contact())
    store.given(CASES.stream_id(CASE_ID), STREAM_TYPE, [submitted()])
    with pytest.raises(CommandRejected) as refused:
        await handle(store, contact(contacted_on=date(2026, 12, 4)))
    assert refused.value.code == "contact_in_future"
    assert store.new_events() == []
