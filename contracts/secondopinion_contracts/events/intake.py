"""Events published by intake (routing keys `intake.<EventName>.v<N>`)."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field, model_validator

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import (
    ConsentBasis,
    ContactChannel,
    ContactDirection,
    CorrectedField,
    CorrectionReason,
    DeclineReason,
    Department,
    DocumentKind,
    Mode,
    Recommendation,
    RefusalReason,
    Relationship,
    Screening,
    WithdrawalReason,
)
from secondopinion_contracts.fields import CaseId, tokyo_date

# A requested department is any such code: one the hospital does not have is declined (`no_specialist_available`).
DEPARTMENT_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
MODE = Field(description="In person at the hospital, or online through the telemedicine platform.")
DEPARTMENT = Field(description="The department whose specialist gives the opinion.")


class _IntakeEvent(EventData):
    SERVICE: ClassVar[str] = "intake"
    case_id: CaseId


class CaseSubmitted(_IntakeEvent):
    """A patient or family asked for a second opinion. Carries facts as codes, never names."""

    NAME: ClassVar[str] = "CaseSubmitted"
    mode: Mode = MODE
    department: str = Field(pattern=DEPARTMENT_PATTERN, description=(
        "The department asked for, as requested: usually a `Department` code; any other code is declined "
        "as `no_specialist_available`."))
    requester_relationship: Relationship = Field(description="Who asks: the patient, family, or someone else.")
    patient_is_minor: bool = Field(description="The patient is under 18 on the submission date.")
    patient_deceased: bool = Field(description="The patient has died (a request the guide refuses).")
    attending_physician_consents: bool = Field(description="The attending physician agreed to the second opinion.")
    wants_treatment_here: bool = Field(description="The requester wants treatment at this hospital, not an opinion.")
    complaint_or_litigation: bool = Field(description="The request is about a complaint or a lawsuit.")
    submitted_on: date = tokyo_date("When the request was submitted")
    payer_name_sealed: str | None = Field(
        None, max_length=4000, pattern=r"^[A-Za-z0-9_-]+={0,2}$",
        description="The requester's name for receipts, sealed (AES-256-GCM, base64url) with the case's own key, "
                    "which intake holds and hands only to billing's cashiers; unreadable once the case's personal "
                    "data is erased. Added after the first release.")
    case_number: str | None = Field(
        None, pattern=r"^SO-\d{4}-\d{5,9}$",
        description="The number staff read over the phone (SO-2026-00123): the year of submission (Asia/Tokyo) and "
                    "its place in that year, never reused. No personal data; `case_id` stays the key. Added in 1.3.0 "
                    "(absent from cases submitted before).")


class DocumentReceived(_IntakeEvent):
    """A document of the application arrived at the desk."""

    NAME: ClassVar[str] = "DocumentReceived"
    document_id: UUID = Field(description="The document (its content stays in intake).")
    kind: DocumentKind = Field(description="What the document is.")
    received_on: date = tokyo_date("When the desk received it")
    copy_of: UUID | None = Field(
        None, description="Set when a document of this kind was already received: the first one's document_id. "
                          "A copy adds nothing to the request (it does not verify consent again).")


class ConsentVerified(_IntakeEvent):
    """The patient's consent to the second opinion is established."""

    NAME: ClassVar[str] = "ConsentVerified"
    basis: ConsentBasis = Field(description="Why the consent is taken as given.")


class CaseAccepted(_IntakeEvent):
    """A specialist screened the request and accepted it: scheduling starts."""

    NAME: ClassVar[str] = "CaseAccepted"
    department: Department = DEPARTMENT
    mode: Mode = MODE
    screened_by: str = Field(min_length=1, max_length=100, description="Staff id of the screening physician.")


class CaseDeclined(_IntakeEvent):
    """The request is refused (v1, deprecated: published beside v2 until its sunset; a referral is mixed into
    `reasons`)."""

    NAME: ClassVar[str] = "CaseDeclined"
    SUNSET: ClassVar[str | None] = "2027-03-31"
    reasons: list[RefusalReason] = Field(min_length=1, description="Why, in the guide's order of reasons.")
    declined_by: str = Field(min_length=1, max_length=100, description="Staff id, or `intake` when automatic.")


AUTOMATIC_DECLINER_V1 = "intake"


class CaseDeclinedV2(_IntakeEvent):
    """The request is refused. v2 separates a referral to the general outpatient clinic (a recommendation,
    which the general outpatient desk subscribes to) from the refusal reasons, and says explicitly whether
    intake declined on the submitted facts or a specialist on the content."""

    NAME: ClassVar[str] = "CaseDeclined"
    VERSION: ClassVar[int] = 2
    reasons: list[DeclineReason] = Field(default_factory=list, description=(
        "Why, in the guide's order; may be empty when the request is only referred elsewhere."))
    recommendation: Recommendation | None = Field(None, description="Where the patient is referred instead, if at all.")
    screening: Screening = Field(description="Who declined: intake on the submitted facts, or a specialist.")
    declined_by: str | None = Field(None, min_length=1, max_length=100,
                                    description="Staff id of the specialist; absent when automatic.")

    @model_validator(mode="after")
    def _has_a_reason_or_recommendation(self) -> CaseDeclinedV2:
        if not self.reasons and self.recommendation is None:
            raise ValueError("a decline needs at least one reason or a recommendation")
        if (self.screening is Screening.SPECIALIST) != (self.declined_by is not None):
            raise ValueError("declined_by is the specialist's staff id, and only for a specialist's decline")
        return self

    def as_v1(self) -> CaseDeclined:
        reasons = [RefusalReason(reason.value) for reason in self.reasons]
        if self.recommendation is Recommendation.GENERAL_OUTPATIENT:
            reasons.append(RefusalReason.REFER_TO_GENERAL_OUTPATIENT)
        return CaseDeclined(case_id=self.case_id, reasons=reasons,
                            declined_by=self.declined_by or AUTOMATIC_DECLINER_V1)

    def published_alongside(self) -> tuple[EventData, ...]:
        return (self.as_v1(),)

    @staticmethod
    def upcast_v1(data: dict[str, Any]) -> dict[str, Any]:
        """Stored v1 data as v2 (applied on load by intake's event store)."""
        referral = RefusalReason.REFER_TO_GENERAL_OUTPATIENT.value
        automatic = data["declined_by"] == AUTOMATIC_DECLINER_V1
        return {
            "case_id": data["case_id"],
            "reasons": [reason for reason in data["reasons"] if reason != referral],
            "recommendation": Recommendation.GENERAL_OUTPATIENT.value if referral in data["reasons"] else None,
            "screening": (Screening.AUTOMATIC if automatic else Screening.SPECIALIST).value,
            "declined_by": None if automatic else data["declined_by"],
        }


class CaseWithdrawn(_IntakeEvent):
    """The request was withdrawn before the consultation: the case ends here."""

    NAME: ClassVar[str] = "CaseWithdrawn"
    reason: WithdrawalReason = Field(description="Why it was withdrawn.")


class PersonalDataErased(_IntakeEvent):
    """The case's personal data was erased after its retention period (its key destroyed): every service
    should purge what it holds of this patient; ids, codes and history stay."""

    NAME: ClassVar[str] = "PersonalDataErased"
    erased_on: date = tokyo_date("When the data was erased")


class CaseDetailsCorrected(_IntakeEvent):
    """A coordinator corrected the case's details (a mistyped name, phone, address, birth date, attending
    physician) or the request's facts. Names the fields and why, never their values: those stay sealed in intake.
    A corrected fact a refusal is decided on carries its new value; when it shows a refusal reason, `CaseDeclined`
    follows at once (screening `automatic`). Added in 1.2.0."""

    NAME: ClassVar[str] = "CaseDetailsCorrected"
    correction_id: UUID = Field(description="The correction (its note, if any, stays sealed in intake).")
    fields: list[CorrectedField] = Field(min_length=1, max_length=len(CorrectedField),
                                         description="What was corrected, in the order of `CorrectedField`.")
    reason: CorrectionReason = Field(description="Why it was corrected.")
    corrected_on: date = tokyo_date("When it was corrected")
    patient_is_minor: bool | None = Field(
        None, description="Set when the birth date was corrected: whether the patient is under 18 on the "
                          "submission date now.")
    patient_deceased: bool | None = Field(None, description="The new value, when corrected.")
    attending_physician_consents: bool | None = Field(None, description="The new value, when corrected.")
    wants_treatment_here: bool | None = Field(None, description="The new value, when corrected.")
    complaint_or_litigation: bool | None = Field(None, description="The new value, when corrected.")


class ContactRecorded(_IntakeEvent):
    """A call, letter or e-mail to or from the patient's side about the case, entered in the desk's contact log.
    The note of what was said stays sealed in intake. Added in 1.2.0."""

    NAME: ClassVar[str] = "ContactRecorded"
    contact_id: UUID = Field(description="The contact log entry (its note stays in intake).")
    contacted_on: date = tokyo_date("When the call was made or the letter sent or received")
    direction: ContactDirection = Field(description="From the patient's side to the desk, or the other way.")
    channel: ContactChannel = Field(description="Phone, letter or e-mail.")
    handled_by: str = Field(min_length=1, max_length=100, description="Staff id of who made or took it.")


EVENTS: tuple[type[EventData], ...] = (
    CaseSubmitted,
    DocumentReceived,
    ConsentVerified,
    CaseAccepted,
    CaseDeclined,
    CaseDeclinedV2,
    CaseWithdrawn,
    PersonalDataErased,
    CaseDetailsCorrected,
    ContactRecorded,
)
