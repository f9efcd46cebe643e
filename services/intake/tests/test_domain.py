"""Case rules, given past events, when a command, then new events (pure, no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import pytest

from eventkit.errors import CommandRejected
from eventkit.events import Event
from intake import domain
from intake.commands import Person, ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from secondopinion_contracts.codes import (
    ConsentBasis,
    DeclineReason,
    DocumentKind,
    Mode,
    Recommendation,
    RefusalReason,
    Relationship,
    Screening,
    WithdrawalReason,
)
from secondopinion_contracts.events.intake import (
    CaseAccepted,
    CaseDeclinedV2,
    CaseSubmitted,
    CaseWithdrawn,
    ConsentVerified,
    DocumentReceived,
)

DEPARTMENTS = frozenset({"cardiology", "pediatrics"})
CASE_ID = uuid.uuid4()
TODAY = date(2026, 12, 1)


def submission(**changes: object) -> SubmitCase:
    base = SubmitCase(
        case_id=CASE_ID, requester_relationship=Relationship.SELF, requester=Person("A", "03-0000-0000"),
        patient_name="A", patient_birth_date=date(1970, 5, 5), patient_deceased=False, patient_consents=None,
        mode=Mode.IN_PERSON, department="cardiology", question="q", attending_physician_name="B",
        attending_institution="C", attending_physician_consents=True, wants_treatment_here=False,
        complaint_or_litigation=False, submitted_on=TODAY,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def fold(events: list[Event]) -> domain.Case:
    case = domain.Case()
    for event in events:
        case = domain.evolve(case, event)
    return case


def given_submitted(**changes: object) -> tuple[domain.Case, list[Event]]:
    events = domain.submit(submission(**changes), domain.Case(), DEPARTMENTS)
    return fold(events), events


def receive(case: domain.Case, kind: DocumentKind) -> tuple[domain.Case, list[Event]]:
    events = domain.receive_document(ReceiveDocument(CASE_ID, uuid.uuid4(), kind, TODAY), case)
    for event in events:
        case = domain.evolve(case, event)
    return case, events


def test_the_patient_asking_for_themself_is_consent_enough() -> None:
    case, events = given_submitted()
    assert [type(e) for e in events] == [CaseSubmitted, ConsentVerified]
    assert events[1] == ConsentVerified(case_id=CASE_ID, basis=ConsentBasis.REQUESTER_IS_PATIENT)
    assert case.status is domain.CaseStatus.SUBMITTED
    assert case.missing_documents == [DocumentKind.APPLICATION_FORM, DocumentKind.REFERRAL_LETTER,
                                      DocumentKind.TEST_RESULTS]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"requester_relationship": Relationship.OTHER}, DeclineReason.REQUESTER_NOT_PATIENT_OR_FAMILY),
    ({"requester_relationship": Relationship.FAMILY, "patient_consents": False},
     DeclineReason.MISSING_PATIENT_CONSENT),
    ({"wants_treatment_here": True}, DeclineReason.SEEKS_TREATMENT_HERE),
    ({"complaint_or_litigation": True}, DeclineReason.COMPLAINT_OR_LITIGATION),
    ({"patient_deceased": True}, DeclineReason.PATIENT_DECEASED),
    ({"attending_physician_consents": False}, DeclineReason.ATTENDING_PHYSICIAN_NOT_CONSENTING),
    ({"department": "astrology"}, DeclineReason.NO_SPECIALIST_AVAILABLE),
])
def test_each_refusal_reason_declines_at_submission(changes: dict[str, object], reason: DeclineReason) -> None:
    case, events = given_submitted(**changes)
    assert events[-1] == CaseDeclinedV2(case_id=CASE_ID, reasons=[reason], screening=Screening.AUTOMATIC)
    assert case.status is domain.CaseStatus.DECLINED


def test_every_applicable_reason_is_listed_in_the_guides_order() -> None:
    _, events = given_submitted(requester_relationship=Relationship.OTHER, patient_deceased=True,
                                wants_treatment_here=True)
    assert isinstance(events[-1], CaseDeclinedV2)
    assert events[-1].reasons == [DeclineReason.REQUESTER_NOT_PATIENT_OR_FAMILY, DeclineReason.SEEKS_TREATMENT_HERE,
                                  DeclineReason.PATIENT_DECEASED]


def test_a_minor_family_request_without_consent_is_not_refused_for_consent() -> None:
    case, events = given_submitted(requester_relationship=Relationship.FAMILY, patient_consents=False,
                                   patient_birth_date=date(2010, 1, 1))
    assert [type(e) for e in events] == [CaseSubmitted]
    assert case.patient_is_minor
    assert case.missing_documents == [DocumentKind.APPLICATION_FORM, DocumentKind.REFERRAL_LETTER,
                                      DocumentKind.TEST_RESULTS, DocumentKind.RELATIONSHIP_PROOF]


def test_the_patient_turning_18_on_the_submission_date_is_an_adult() -> None:
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY, patient_birth_date=date(2008, 12, 1))
    assert not case.patient_is_minor
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY, patient_birth_date=date(2008, 12, 2))
    assert case.patient_is_minor


def test_family_of_an_adult_needs_the_consent_form() -> None:
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY)
    case, events = receive(case, DocumentKind.APPLICATION_FORM)
    assert [type(e) for e in events] == [DocumentReceived]
    case, _ = receive(case, DocumentKind.REFERRAL_LETTER)
    case, _ = receive(case, DocumentKind.TEST_RESULTS)
    assert case.status is domain.CaseStatus.AWAITING_DOCUMENTS
    case, events = receive(case, DocumentKind.CONSENT_FORM)
    assert events[-1] == ConsentVerified(case_id=CASE_ID, basis=ConsentBasis.CONSENT_FORM)
    assert case.status is domain.CaseStatus.SCREENING


def test_relationship_proof_verifies_consent_for_a_minor_only() -> None:
    minor, _ = given_submitted(requester_relationship=Relationship.FAMILY, patient_birth_date=date(2015, 3, 3))
    _, events = receive(minor, DocumentKind.RELATIONSHIP_PROOF)
    assert events[-1] == ConsentVerified(case_id=CASE_ID, basis=ConsentBasis.MINOR_WITH_RELATIONSHIP_PROOF)
    adult, _ = given_submitted(requester_relationship=Relationship.FAMILY)
    _, events = receive(adult, DocumentKind.RELATIONSHIP_PROOF)
    assert [type(e) for e in events] == [DocumentReceived]


def test_consent_is_verified_once() -> None:
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY)
    case, _ = receive(case, DocumentKind.CONSENT_FORM)
    _, events = receive(case, DocumentKind.CONSENT_FORM)
    assert [type(e) for e in events] == [DocumentReceived]


def test_test_materials_are_required_for_acceptance() -> None:
    case, _ = given_submitted()
    case, _ = receive(case, DocumentKind.APPLICATION_FORM)
    case, _ = receive(case, DocumentKind.REFERRAL_LETTER)
    assert case.missing_documents == [DocumentKind.TEST_RESULTS]
    assert case.status is domain.CaseStatus.AWAITING_DOCUMENTS
    with pytest.raises(CommandRejected) as rejected:
        domain.screen(ScreenCase(CASE_ID, accept=True, physician="dr-1"), case, DEPARTMENTS)
    assert (rejected.value.code, rejected.value.details) == ("not_ready", ["document:test_results"])
    case, _ = receive(case, DocumentKind.TEST_RESULTS)
    assert case.missing_documents == []
    assert case.status is domain.CaseStatus.SCREENING


def test_a_second_document_of_a_kind_is_recorded_as_a_copy_of_the_first() -> None:
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY)
    case, first = receive(case, DocumentKind.CONSENT_FORM)
    assert [type(e) for e in first] == [DocumentReceived, ConsentVerified]
    assert isinstance(first[0], DocumentReceived)
    assert first[0].copy_of is None
    case, second = receive(case, DocumentKind.CONSENT_FORM)
    assert [type(e) for e in second] == [DocumentReceived], "a copy does not verify consent again"
    assert isinstance(second[0], DocumentReceived)
    assert second[0].copy_of == first[0].document_id
    case, third = receive(case, DocumentKind.CONSENT_FORM)
    assert isinstance(third[0], DocumentReceived)
    assert third[0].copy_of == first[0].document_id, "always the first"
    assert case.original_of(DocumentKind.CONSENT_FORM) == first[0].document_id
    assert case.original_of(DocumentKind.TEST_RESULTS) is None


def test_a_copy_of_the_consent_form_for_a_minor_verifies_nothing_again() -> None:
    minor, _ = given_submitted(requester_relationship=Relationship.FAMILY, patient_birth_date=date(2015, 3, 3))
    minor, events = receive(minor, DocumentKind.CONSENT_FORM)
    assert events[-1] == ConsentVerified(case_id=CASE_ID, basis=ConsentBasis.CONSENT_FORM)
    minor, events = receive(minor, DocumentKind.CONSENT_FORM)
    assert [type(e) for e in events] == [DocumentReceived]
    assert minor.consent is ConsentBasis.CONSENT_FORM


def test_acceptance_lists_everything_missing() -> None:
    case, _ = given_submitted(requester_relationship=Relationship.FAMILY)
    case, _ = receive(case, DocumentKind.APPLICATION_FORM)
    with pytest.raises(CommandRejected) as rejected:
        domain.screen(ScreenCase(CASE_ID, accept=True, physician="dr-1"), case, DEPARTMENTS)
    assert rejected.value.details == ["document:referral_letter", "document:test_results", "document:consent_form",
                                      "consent_verified"]


def test_acceptance_needs_a_department_with_specialists_today() -> None:
    case, _ = given_submitted()
    case, _ = receive(case, DocumentKind.APPLICATION_FORM)
    case, _ = receive(case, DocumentKind.REFERRAL_LETTER)
    case, _ = receive(case, DocumentKind.TEST_RESULTS)
    with pytest.raises(CommandRejected) as rejected:
        domain.screen(ScreenCase(CASE_ID, accept=True, physician="dr-1"), case, frozenset({"pediatrics"}))
    assert rejected.value.details == ["specialist_for:cardiology"]


def test_a_complete_case_is_accepted_with_department_and_mode() -> None:
    case, _ = given_submitted(mode=Mode.ONLINE)
    case, _ = receive(case, DocumentKind.APPLICATION_FORM)
    case, _ = receive(case, DocumentKind.REFERRAL_LETTER)
    case, _ = receive(case, DocumentKind.TEST_RESULTS)
    events = domain.screen(ScreenCase(CASE_ID, accept=True, physician="dr-1"), case, DEPARTMENTS)
    assert events == [CaseAccepted(case_id=CASE_ID, department="cardiology", mode=Mode.ONLINE, screened_by="dr-1")]
    accepted = fold([*given_submitted(mode=Mode.ONLINE)[1], *events])
    with pytest.raises(CommandRejected):
        domain.screen(ScreenCase(CASE_ID, accept=True, physician="dr-1"), accepted, DEPARTMENTS)


def test_the_specialist_may_decline_on_content_or_refer_to_general_outpatient() -> None:
    case, _ = given_submitted()
    assert domain.screen(ScreenCase(CASE_ID, accept=False, physician="dr-1"), case, DEPARTMENTS) == [
        CaseDeclinedV2(case_id=CASE_ID, reasons=[DeclineReason.DECLINED_BY_SPECIALIST],
                       screening=Screening.SPECIALIST, declined_by="dr-1")]
    referral = ScreenCase(CASE_ID, accept=False, physician="dr-1", reasons=(RefusalReason.REFER_TO_GENERAL_OUTPATIENT,))
    assert domain.screen(referral, case, DEPARTMENTS) == [
        CaseDeclinedV2(case_id=CASE_ID, reasons=[], recommendation=Recommendation.GENERAL_OUTPATIENT,
                       screening=Screening.SPECIALIST, declined_by="dr-1")]


def test_v2_declines_are_published_as_v1_beside_them_and_v1_history_upcasts() -> None:
    referral = CaseDeclinedV2(case_id=CASE_ID, reasons=[DeclineReason.DECLINED_BY_SPECIALIST],
                              recommendation=Recommendation.GENERAL_OUTPATIENT, screening=Screening.SPECIALIST,
                              declined_by="dr-1")
    (v1,) = referral.published_alongside()
    assert v1.model_dump(mode="json") == {
        "case_id": str(CASE_ID), "reasons": ["declined_by_specialist", "refer_to_general_outpatient"],
        "declined_by": "dr-1"}
    assert CaseDeclinedV2.model_validate(CaseDeclinedV2.upcast_v1(v1.model_dump(mode="json"))) == referral
    automatic = CaseDeclinedV2(case_id=CASE_ID, reasons=[DeclineReason.PATIENT_DECEASED],
                               screening=Screening.AUTOMATIC)
    (automatic_v1,) = automatic.published_alongside()
    assert CaseDeclinedV2.model_validate(CaseDeclinedV2.upcast_v1(automatic_v1.model_dump(mode="json"))) == automatic


def test_a_declined_or_withdrawn_case_takes_no_more_commands() -> None:
    declined, _ = given_submitted(patient_deceased=True)
    with pytest.raises(CommandRejected, match="declined"):
        receive(declined, DocumentKind.APPLICATION_FORM)
    case, _ = given_submitted()
    events = domain.withdraw(WithdrawCase(CASE_ID, WithdrawalReason.PATIENT_REQUEST), case)
    assert events == [CaseWithdrawn(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST)]
    withdrawn = domain.evolve(case, events[0])
    with pytest.raises(CommandRejected, match="withdrawn"):
        domain.withdraw(WithdrawCase(CASE_ID, WithdrawalReason.OTHER), withdrawn)


def test_submitting_twice_or_a_birth_date_in_the_future_is_rejected() -> None:
    case, _ = given_submitted()
    with pytest.raises(CommandRejected):
        domain.submit(submission(), case, DEPARTMENTS)
    with pytest.raises(CommandRejected, match="birth date"):
        domain.submit(submission(patient_birth_date=date(2027, 1, 1)), domain.Case(), DEPARTMENTS)
