"""Reporting's commands: what the physician and the desk do with the opinion report, and the facts
reporting notes from other services' events (each becomes a command on the case's report)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from secondopinion_contracts.codes import DeliveryChannel, Mode


@dataclass(frozen=True)
class DraftReport:
    case_id: UUID
    report_id: UUID  # used only for the first draft; later drafts keep the report's id
    physician_id: str
    summary: str


@dataclass(frozen=True)
class FinalizeReport:
    case_id: UUID


@dataclass(frozen=True)
class RecordDelivery:
    case_id: UUID
    channel: DeliveryChannel


@dataclass(frozen=True)
class NoteConsultation:
    case_id: UUID
    appointment_id: UUID
    mode: Mode
    consulted_on: date


@dataclass(frozen=True)
class NotePayment:
    case_id: UUID
    invoice_id: UUID
    amount: int


@dataclass(frozen=True)
class NoteRefund:
    case_id: UUID
    invoice_id: UUID
    amount: int
    fully_refunded: bool


@dataclass(frozen=True)
class EraseReportTexts:
    """PersonalDataErased: the opinion is about the patient, so its text goes with their personal data."""

    case_id: UUID
    erased_on: date

