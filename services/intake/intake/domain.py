"""The Case aggregate: decide(command, state) -> events, evolve(state, event) -> state. Pure.

Rules (docs/domain.md): who may ask and the refusal reasons, the documents a request needs, and when
the patient's consent counts as verified.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventkit.errors import CommandRejected
from eventkit.events import Event
from intake.commands import (
    CorrectCaseDetails,
    ErasePersonalData,
    ReceiveDocument,
    RecordContact,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from secondopinion_contracts.codes import (
    ConsentBasis,
    CorrectedField,
    DeclineReason,
    DocumentKind,
    Mode,
    Recommendation,
    RefusalReason,
    Relationship,
    Screening,
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

ADULT_AGE = 18


class CaseStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    AWAITING_DOCUMENTS = "awaiting_documents"
    SCREENING = "screening"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


CLOSED = (CaseStatus.DECLINED, CaseStatus.WITHDRAWN)


@dataclass(frozen=True)
class Case:
    status: CaseStatus = CaseStatus.NEW
    mode: Mode | None = None
    department: str = ""
    relationship: Relationship | None = None
    patient_is_minor: bool = False
    documents: tuple[DocumentKind, ...] = ()
    # the first document received of each kind: a later one of the same kind is recorded as its copy
    originals: tuple[tuple[DocumentKind, UUID], ...] = ()
    consent: ConsentBasis | None = None
    reasons: tuple[DeclineReason, ...] = field(default=())
    recommendation: Recommendation | None = None
    personal_data_erased: bool = False
    # The submitted facts a refusal is decided on (CaseSubmitted, then corrections), decided again on a correction.
    submitted_on: date | None = None
    patient_deceased: bool = False
    attending_physician_consents: bool = True
    wants_treatment_here: bool = False
    complaint_or_litigation: bool = False

    @property
    def missing_documents(self) -> list[DocumentKind]:
        return missing_documents(self)

    def original_of(self, kind: DocumentKind) -> UUID | None:
        return next((document_id for known, document_id in self.originals if known is kind), None)


def age_on(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


def required_documents(case: Case) -> list[DocumentKind]:
    # The guide: test materials (検査資料, CD-R accepted) always come with the referral letter; without them
    # only general talk is possible, so a request is not complete without them.
    required = [DocumentKind.APPLICATION_FORM, DocumentKind.REFERRAL_LETTER, DocumentKind.TEST_RESULTS]
    if case.relationship is Relationship.FAMILY:
        if not case.patient_is_minor:
            required.append(DocumentKind.CONSENT_FORM)
        elif DocumentKind.CONSENT_FORM not in case.documents:
            required.append(DocumentKind.RELATIONSHIP_PROOF)
    return required


def missing_documents(case: Case) -> list[DocumentKind]:
    return [kind for kind in required_documents(case) if kind not in case.documents]


def consent_basis(case: Case) -> ConsentBasis | None:
    if case.relationship is Relationship.SELF:
        return ConsentBasis.REQUESTER_IS_PATIENT
    if case.relationship is not Relationship.FAMILY:
        return None
    if DocumentKind.CONSENT_FORM in case.documents:
        return ConsentBasis.CONSENT_FORM
    if case.patient_is_minor and DocumentKind.RELATIONSHIP_PROOF in case.documents:
        return ConsentBasis.MINOR_WITH_RELATIONSHIP_PROOF
    return None


def refusal_reasons(command: SubmitCase, departments: frozenset[str], patient_is_minor: bool) -> list[DeclineReason]:
    """Refusal reasons the submitted facts already show, in the guide's order."""
    reasons = fact_refusals(
        relationship=command.requester_relationship, patient_consents=command.patient_consents,
        patient_is_minor=patient_is_minor, wants_treatment_here=command.wants_treatment_here,
        complaint_or_litigation=command.complaint_or_litigation, patient_deceased=command.patient_deceased,
        attending_physician_consents=command.attending_physician_consents)
    if command.department not in departments:
        reasons.append(DeclineReason.NO_SPECIALIST_AVAILABLE)
    return reasons


def fact_refusals(*, relationship: Relationship | None, patient_consents: bool | None, patient_is_minor: bool,
                  wants_treatment_here: bool, complaint_or_litigation: bool, patient_deceased: bool,
                  attending_physician_consents: bool) -> list[DeclineReason]:
    """The guide's refusal reasons the request's facts show, in its order (all but the department's)."""
    reasons: list[DeclineReason] = []
    if relationship is Relationship.OTHER:
        reasons.append(DeclineReason.REQUESTER_NOT_PATIENT_OR_FAMILY)
    if relationship is Relationship.FAMILY and patient_consents is False and not patient_is_minor:
        reasons.append(DeclineReason.MISSING_PATIENT_CONSENT)
    if wants_treatment_here:
        reasons.append(DeclineReason.SEEKS_TREATMENT_HERE)
    if complaint_or_litigation:
        reasons.append(DeclineReason.COMPLAINT_OR_LITIGATION)
    if patient_deceased:
        reasons.append(DeclineReason.PATIENT_DECEASED)
    if not attending_physician_consents:
        reasons.append(DeclineReason.ATTENDING_PHYSICIAN_NOT_CONSENTING)
    return reasons


def submit(command: SubmitCase, case: Case, departments: frozenset[str]) -> list[Event]:
    if case.status is not CaseStatus.NEW:
        raise CommandRejected(f"case {command.case_id} already exists", code="duplicate_case")
    if command.patient_birth_date > command.submitted_on:
        raise CommandRejected("the patient's birth date is after the submission date", code="invalid_birth_date")
    minor = age_on(command.patient_birth_date, command.submitted_on) < ADULT_AGE
    events: list[Event] = [CaseSubmitted(
        case_id=command.case_id, mode=command.mode, department=command.department,
        requester_relationship=command.requester_relationship, patient_is_minor=minor,
        patient_deceased=command.patient_deceased, attending_physician_consents=command.attending_physician_consents,
        wants_treatment_here=command.wants_treatment_here, complaint_or_litigation=command.complaint_or_litigation,
        submitted_on=command.submitted_on, payer_name_sealed=command.payer_name_sealed,
    )]
    reasons = refusal_reasons(command, departments, minor)
    if reasons:
        events.append(CaseDeclinedV2(case_id=command.case_id, reasons=reasons, screening=Screening.AUTOMATIC))
    elif command.requester_relationship is Relationship.SELF:
        events.append(ConsentVerified(case_id=command.case_id, basis=ConsentBasis.REQUESTER_IS_PATIENT))
    return events


def _require_open(case: Case, what: str) -> None:
    if case.status is CaseStatus.NEW:
        raise CommandRejected("no such case", code="not_found")
    if case.status in CLOSED:
        raise CommandRejected(f"cannot {what}: the case is {case.status.value}", code=f"case_{case.status.value}")


def receive_document(command: ReceiveDocument, case: Case) -> list[Event]:
    _require_open(case, "receive documents")
    original = case.original_of(command.kind)
    received = DocumentReceived(case_id=command.case_id, document_id=command.document_id, kind=command.kind,
                                received_on=command.received_on, copy_of=original)
    events: list[Event] = [received]
    if original is None and case.consent is None:
        basis = consent_basis(evolve(case, received))
        if basis is not None:
            events.append(ConsentVerified(case_id=command.case_id, basis=basis))
    return events


def screen(command: ScreenCase, case: Case, departments: frozenset[str]) -> list[Event]:
    _require_open(case, "screen the case")
    if case.status is CaseStatus.ACCEPTED:
        raise CommandRejected("the case was already accepted", code="already_accepted")
    if not command.accept:
        referral = RefusalReason.REFER_TO_GENERAL_OUTPATIENT
        reasons = [DeclineReason(reason.value) for reason in command.reasons if reason is not referral]
        recommendation = Recommendation.GENERAL_OUTPATIENT if referral in command.reasons else None
        if not reasons and recommendation is None:
            reasons = [DeclineReason.DECLINED_BY_SPECIALIST]
        return [CaseDeclinedV2(case_id=command.case_id, reasons=reasons, recommendation=recommendation,
                               screening=Screening.SPECIALIST, declined_by=command.physician)]
    missing = [f"document:{kind.value}" for kind in missing_documents(case)]
    if case.consent is None:
        missing.append("consent_verified")
    if case.department not in departments:
        missing.append(f"specialist_for:{case.department}")
    if missing:
        raise CommandRejected("the case cannot be accepted yet: " + ", ".join(missing), code="not_ready",
                              details=missing)
    assert case.mode is not None
    return [CaseAccepted(case_id=command.case_id, department=case.department, mode=case.mode,
                         screened_by=command.physician)]


def withdraw(command: WithdrawCase, case: Case) -> list[Event]:
    _require_open(case, "withdraw")
    return [CaseWithdrawn(case_id=command.case_id, reason=command.reason)]


# The request's facts a correction may change, each decided again by the refusal rules.
FACTS = (CorrectedField.PATIENT_DECEASED, CorrectedField.ATTENDING_PHYSICIAN_CONSENTS,
         CorrectedField.WANTS_TREATMENT_HERE, CorrectedField.COMPLAINT_OR_LITIGATION)


def personal_corrections(command: CorrectCaseDetails) -> dict[CorrectedField, dict[str, Any]]:
    """The personal details a correction gives, each as the values of the sealed personal data it sets."""
    given: dict[CorrectedField, dict[str, Any] | None] = {
        CorrectedField.REQUESTER_NAME: _one("requester_name", command.requester_name),
        CorrectedField.REQUESTER_PHONE: _one("requester_phone", command.requester_phone),
        CorrectedField.PATIENT_NAME: _one("patient_name", command.patient_name),
        CorrectedField.PATIENT_BIRTH_DATE: _one(
            "patient_birth_date", command.patient_birth_date.isoformat() if command.patient_birth_date else None),
        CorrectedField.PATIENT_POSTAL_ADDRESS: None if command.patient_postal_address is None else {
            "patient_postal_code": command.patient_postal_address.postal_code,
            "patient_address": command.patient_postal_address.address},
        CorrectedField.ATTENDING_PHYSICIAN_NAME: _one("attending_name", command.attending_physician_name),
        CorrectedField.ATTENDING_INSTITUTION: _one("attending_institution", command.attending_institution),
        CorrectedField.ATTENDING_INSTITUTION_ADDRESS: None if command.attending_institution_address is None else {
            "attending_postal_code": command.attending_institution_address.postal_code,
            "attending_address": command.attending_institution_address.address},
        CorrectedField.QUESTION: _one("question", command.question),
    }
    return {name: values for name, values in given.items() if values is not None}


def _one(key: str, value: Any) -> dict[str, Any] | None:
    return None if value is None else {key: value}


def correct(command: CorrectCaseDetails, case: Case, changed: Collection[CorrectedField]) -> list[Event]:
    """A correction of an open case. `changed`: the personal details whose sealed value it really changes. The
    facts it changes are decided again by the refusal rules: a reason declines the case at once (an accepted case
    is not declined by a correction: it is withdrawn), and it is never accepted by one."""
    _require_open(case, "correct the case")
    if case.personal_data_erased:
        raise CommandRejected("the case's personal data was erased: nothing is left to correct", code="already_erased")
    assert case.submitted_on is not None
    if command.patient_birth_date is not None and command.patient_birth_date > case.submitted_on:
        raise CommandRejected("the patient's birth date is after the submission date", code="invalid_birth_date")
    facts = {fact: value for fact in FACTS
             if (value := getattr(command, fact.value)) is not None and value != getattr(case, fact.value)}
    fields = [name for name in CorrectedField if name in changed or name in facts]
    if not fields:
        raise CommandRejected("the correction changes nothing: every value given is the one recorded",
                              code="nothing_to_correct")
    minor = None
    if CorrectedField.PATIENT_BIRTH_DATE in fields:
        assert command.patient_birth_date is not None
        minor = age_on(command.patient_birth_date, case.submitted_on) < ADULT_AGE
    corrected = CaseDetailsCorrected(
        case_id=command.case_id, correction_id=command.correction_id, fields=fields, reason=command.reason,
        corrected_on=command.corrected_on, patient_is_minor=minor, **{fact.value: v for fact, v in facts.items()})
    after = evolve(case, corrected)
    reasons = fact_refusals(
        relationship=after.relationship, patient_consents=None, patient_is_minor=after.patient_is_minor,
        wants_treatment_here=after.wants_treatment_here, complaint_or_litigation=after.complaint_or_litigation,
        patient_deceased=after.patient_deceased, attending_physician_consents=after.attending_physician_consents)
    if case.status is CaseStatus.ACCEPTED:
        undone = [reason.value for reason in reasons]
        if case.consent is not None and after.consent is None:
            undone.append("consent_verified")
        if undone:
            raise CommandRejected(
                "the case was already accepted: a correction cannot decline it (" + ", ".join(undone)
                + "); withdraw the case instead", code="refusal_after_acceptance", details=undone)
    events: list[Event] = [corrected]
    if reasons:
        events.append(CaseDeclinedV2(case_id=command.case_id, reasons=reasons, screening=Screening.AUTOMATIC))
    elif minor is not None and after.consent is None and (basis := consent_basis(after)) is not None:
        events.append(ConsentVerified(case_id=command.case_id, basis=basis))
    return events


def record_contact(command: RecordContact, case: Case) -> list[Event]:
    """A contact is logged on any case, closed ones too, until its personal data is erased (its note is sealed with
    the case's key)."""
    if case.status is CaseStatus.NEW:
        raise CommandRejected("no such case", code="not_found")
    if case.personal_data_erased:
        raise CommandRejected("the case's personal data was erased: no contact is logged on it",
                              code="already_erased")
    if command.contacted_on > command.recorded_on:
        raise CommandRejected(f"the contact date {command.contacted_on.isoformat()} is after today",
                              code="contact_in_future")
    return [ContactRecorded(case_id=command.case_id, contact_id=command.contact_id,
                            contacted_on=command.contacted_on, direction=command.direction, channel=command.channel,
                            handled_by=command.handled_by)]


def retention_ends(last_activity_on: date, years: int) -> date:
    try:
        return last_activity_on.replace(year=last_activity_on.year + years)
    except ValueError:  # 29 February in a year without one
        return last_activity_on.replace(year=last_activity_on.year + years, day=28)


def erase_personal_data(command: ErasePersonalData, case: Case, *, last_activity_on: date,
                        retention_years: int) -> list[Event]:
    """Allowed once the legal retention period (`retention_years`) after the case's last activity has passed."""
    if case.status is CaseStatus.NEW:
        raise CommandRejected("no such case", code="not_found")
    if case.personal_data_erased:
        raise CommandRejected("the case's personal data was already erased", code="already_erased")
    ends = retention_ends(last_activity_on, retention_years)
    if command.requested_on < ends:
        raise CommandRejected(f"the retention period runs until {ends.isoformat()}; personal data is kept until then",
                              code="retention_period")
    return [PersonalDataErased(case_id=command.case_id, erased_on=command.requested_on)]


@dataclass(frozen=True)
class Purpose:
    """A document another service prints with some of a case's personal data: that service, the roles of the staff
    who print it, and its fields (field in the answer -> field of the sealed personal data)."""

    service: str
    roles: frozenset[str]
    fields: dict[str, str]


# What intake discloses, and to whom: the fields one document prints, and nothing else (docs/security.md).
PURPOSES = {
    "receipt": Purpose("billing", frozenset({"cashier"}), {"payer_name": "requester_name"}),
    "slip": Purpose("scheduling", frozenset({"coordinator"}), {
        "patient_name": "patient_name", "patient_postal_code": "patient_postal_code",
        "patient_address": "patient_address"}),
    "report": Purpose("reporting", frozenset({"coordinator", "physician"}), {
        "patient_name": "patient_name", "patient_birth_date": "patient_birth_date",
        "attending_name": "attending_name", "attending_institution": "attending_institution",
        "attending_postal_code": "attending_postal_code", "attending_address": "attending_address"}),
}


def _status_after_documents(case: Case) -> CaseStatus:
    if case.status in (*CLOSED, CaseStatus.ACCEPTED):
        return case.status
    if not missing_documents(case) and case.consent is not None:
        return CaseStatus.SCREENING
    return CaseStatus.AWAITING_DOCUMENTS


def evolve(case: Case, event: Event) -> Case:
    match event:
        case CaseSubmitted():
            return Case(status=CaseStatus.SUBMITTED, mode=event.mode, department=event.department,
                        relationship=event.requester_relationship, patient_is_minor=event.patient_is_minor,
                        submitted_on=event.submitted_on, patient_deceased=event.patient_deceased,
                        attending_physician_consents=event.attending_physician_consents,
                        wants_treatment_here=event.wants_treatment_here,
                        complaint_or_litigation=event.complaint_or_litigation)
        case DocumentReceived():
            originals = case.originals
            if case.original_of(event.kind) is None:
                originals = (*originals, (event.kind, event.document_id))
            with_document = replace(case, documents=(*case.documents, event.kind), originals=originals)
            return replace(with_document, status=_status_after_documents(with_document))
        case ConsentVerified():
            consented = replace(case, consent=event.basis)
            if case.status is CaseStatus.SUBMITTED:
                return consented
            return replace(consented, status=_status_after_documents(consented))
        case CaseAccepted():
            return replace(case, status=CaseStatus.ACCEPTED)
        case CaseDeclinedV2():
            return replace(case, status=CaseStatus.DECLINED, reasons=tuple(event.reasons),
                           recommendation=event.recommendation)
        case CaseWithdrawn():
            return replace(case, status=CaseStatus.WITHDRAWN)
        case PersonalDataErased():
            return replace(case, personal_data_erased=True)
        case CaseDetailsCorrected():
            return _corrected(case, event)
    return case


def _corrected(case: Case, event: CaseDetailsCorrected) -> Case:
    facts = {fact.value: value for fact in FACTS if (value := getattr(event, fact.value)) is not None}
    corrected = replace(case, **facts)
    if event.patient_is_minor is not None:
        corrected = replace(corrected, patient_is_minor=event.patient_is_minor)
        if not event.patient_is_minor and corrected.consent is ConsentBasis.MINOR_WITH_RELATIONSHIP_PROOF:
            corrected = replace(corrected, consent=None)  # an adult's family needs the patient's consent form
    if case.status is CaseStatus.SUBMITTED:
        return corrected
    return replace(corrected, status=_status_after_documents(corrected))
