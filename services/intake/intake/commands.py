"""Intake's commands: what a coordinator, physician or privacy officer asks the desk to do with a case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from secondopinion_contracts.codes import (
    ContactChannel,
    ContactDirection,
    CorrectionReason,
    DocumentKind,
    Mode,
    RefusalReason,
    Relationship,
    WithdrawalReason,
)


@dataclass(frozen=True)
class Person:
    name: str
    phone: str | None = None


@dataclass(frozen=True)
class PostalAddress:
    postal_code: str
    address: str


@dataclass(frozen=True)
class SubmitCase:
    case_id: UUID
    requester_relationship: Relationship
    requester: Person
    patient_name: str
    patient_birth_date: date
    patient_deceased: bool
    patient_consents: bool | None
    mode: Mode
    department: str
    question: str
    attending_physician_name: str
    attending_institution: str
    attending_physician_consents: bool
    wants_treatment_here: bool
    complaint_or_litigation: bool
    submitted_on: date
    # Where documents are posted: the appointment slip to the patient, the report to the attending physician.
    patient_postal_address: PostalAddress | None = None
    attending_institution_address: PostalAddress | None = None
    # The patient's name in kana (フリガナ), so that a caller who spells it is found as one who writes it.
    patient_name_kana: str | None = None
    # The requester's name sealed with the case's key, for billing's receipts (set by the handler).
    payer_name_sealed: str | None = None


@dataclass(frozen=True)
class ReceiveDocument:
    case_id: UUID
    document_id: UUID
    kind: DocumentKind
    received_on: date


@dataclass(frozen=True)
class ScreenCase:
    case_id: UUID
    accept: bool
    physician: str
    reasons: tuple[RefusalReason, ...] = ()


@dataclass(frozen=True)
class ErasePersonalData:
    """After the retention period: destroy the case's key, so its personal data is unreadable everywhere. Given only
    by `ApproveErasure`'s handler: the API asks for two privacy officers."""

    case_id: UUID
    requested_on: date


@dataclass(frozen=True)
class RequestErasure:
    """A privacy officer asks for the erasure; it waits for a second privacy officer's approval."""

    case_id: UUID
    requested_on: date


@dataclass(frozen=True)
class ApproveErasure:
    """A second privacy officer approves the waiting request: the case's personal data is erased now."""

    case_id: UUID
    approved_on: date


@dataclass(frozen=True)
class WithdrawCase:
    case_id: UUID
    reason: WithdrawalReason


@dataclass(frozen=True)
class CorrectCaseDetails:
    """A coordinator corrects what was recorded: each field given (not None) is the corrected value. The personal
    values go to the sealed personal data only; the facts a refusal is decided on are decided again."""

    case_id: UUID
    correction_id: UUID
    reason: CorrectionReason
    corrected_on: date
    note: str | None = None
    requester_name: str | None = None
    requester_phone: str | None = None
    patient_name: str | None = None
    patient_birth_date: date | None = None
    patient_postal_address: PostalAddress | None = None
    attending_physician_name: str | None = None
    attending_institution: str | None = None
    attending_institution_address: PostalAddress | None = None
    question: str | None = None
    patient_deceased: bool | None = None
    attending_physician_consents: bool | None = None
    wants_treatment_here: bool | None = None
    complaint_or_litigation: bool | None = None


@dataclass(frozen=True)
class RecordContact:
    """A call, letter or e-mail to or from the patient's side, for the case's contact log; the note is sealed."""

    case_id: UUID
    contact_id: UUID
    contacted_on: date
    direction: ContactDirection
    channel: ContactChannel
    note: str
    handled_by: str
    recorded_on: date
