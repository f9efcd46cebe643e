"""Events published by intake (routing keys `intake.<EventName>.v<N>`)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import (
    ConsentBasis,
    DocumentKind,
    Mode,
    RefusalReason,
    Relationship,
    WithdrawalReason,
)

DEPARTMENT_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"


class _IntakeEvent(EventData):
    SERVICE: ClassVar[str] = "intake"
    case_id: UUID


class CaseSubmitted(_IntakeEvent):
    """A patient or family asked for a second opinion. Carries facts as codes, never names."""

    NAME: ClassVar[str] = "CaseSubmitted"
    mode: Mode
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    requester_relationship: Relationship
    patient_is_minor: bool = Field(description="The patient is under 18 on the submission date.")
    patient_deceased: bool
    attending_physician_consents: bool
    wants_treatment_here: bool
    complaint_or_litigation: bool
    submitted_on: date


class DocumentReceived(_IntakeEvent):
    NAME: ClassVar[str] = "DocumentReceived"
    document_id: UUID
    kind: DocumentKind
    received_on: date


class ConsentVerified(_IntakeEvent):
    NAME: ClassVar[str] = "ConsentVerified"
    basis: ConsentBasis


class CaseAccepted(_IntakeEvent):
    NAME: ClassVar[str] = "CaseAccepted"
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    mode: Mode
    screened_by: str = Field(min_length=1, max_length=100, description="Physician staff id.")


class CaseDeclined(_IntakeEvent):
    NAME: ClassVar[str] = "CaseDeclined"
    reasons: list[RefusalReason] = Field(min_length=1)
    declined_by: str = Field(min_length=1, max_length=100, description="Staff id, or `intake` when automatic.")


class CaseWithdrawn(_IntakeEvent):
    NAME: ClassVar[str] = "CaseWithdrawn"
    reason: WithdrawalReason


EVENTS: tuple[type[EventData], ...] = (
    CaseSubmitted,
    DocumentReceived,
    ConsentVerified,
    CaseAccepted,
    CaseDeclined,
    CaseWithdrawn,
)
