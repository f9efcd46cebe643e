"""The Case aggregate: decide(command, state) -> events, evolve(state, event) -> state. Pure.

Rules (docs/domain.md): who may ask and the refusal reasons, the documents a request needs, and when
the patient's consent counts as verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from uuid import UUID

from eventkit.errors import CommandRejected
from eventkit.events import Event
from intake.commands import ErasePersonalData, ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from secondopinion_contracts.codes import (
    ConsentBasis,
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
    CaseSubmitted,
    CaseWithdrawn,
    ConsentVerified,
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
    reasons: list[DeclineReason] = []
    if command.requester_relationship is Relationship.OTHER:
        reasons.append(DeclineReason.REQUESTER_NOT_PATIENT_OR_FAMILY)
    if (command.requester_relationship is Relationship.FAMILY and command.patient_consents is False
            and not patient_is_minor):
        reasons.append(DeclineReason.MISSING_PATIENT_CONSENT)
    if command.wants_treatment_here:
        reasons.append(DeclineReason.SEEKS_TREATMENT_HERE)
    if command.complaint_or_litigation:
        reasons.append(DeclineReason.COMPLAINT_OR_LITIGATION)
    if command.patient_deceased:
        reasons.append(DeclineReason.PATIENT_DECEASED)
    if not command.attending_physician_consents:
        reasons.append(DeclineReason.ATTENDING_PHYSICIAN_NOT_CONSENTING)
    if command.department not in departments:
        reasons.append(DeclineReason.NO_SPECIALIST_AVAILABLE)
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
                        relationship=event.requester_relationship, patient_is_minor=event.patient_is_minor)
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
    return case
