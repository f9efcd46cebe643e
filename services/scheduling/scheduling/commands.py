"""Scheduling's commands: what the desk asks (open slots, propose, confirm, ...), and what the service
does on other services' events (start scheduling, record a payment, record a withdrawal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from uuid import UUID

from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, RescheduleReason, WithdrawalReason


@dataclass(frozen=True)
class OpenSlots:
    department: str
    physician_id: str
    first_day: date
    last_day: date
    start_times: tuple[time, ...]
    duration_minutes: int


@dataclass(frozen=True)
class ProposeSlots:
    case_id: UUID
    slot_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class ConfirmSlot:
    case_id: UUID
    slot_id: UUID
    appointment_id: UUID


@dataclass(frozen=True)
class IssueAppointmentSlip:
    case_id: UUID
    appointment_id: UUID


@dataclass(frozen=True)
class RegisterOnlineBooking:
    case_id: UUID
    appointment_id: UUID
    clinics_booking_ref: str


@dataclass(frozen=True)
class RescheduleAppointment:
    case_id: UUID
    appointment_id: UUID
    slot_id: UUID
    reason: RescheduleReason


@dataclass(frozen=True)
class CancelAppointment:
    case_id: UUID
    appointment_id: UUID
    reason: CancellationReason
    cancelled_by: CancelledBy


@dataclass(frozen=True)
class CompleteConsultation:
    case_id: UUID
    appointment_id: UUID


@dataclass(frozen=True)
class RecordNoShow:
    case_id: UUID
    appointment_id: UUID


@dataclass(frozen=True)
class StartScheduling:
    """Intake accepted the case (CaseAccepted): it now waits for candidate dates."""

    case_id: UUID
    department: str
    mode: Mode


@dataclass(frozen=True)
class RecordFeePayment:
    """Billing captured the fee (PaymentCaptured)."""

    case_id: UUID
    invoice_id: UUID
    amount: int
    captured_at: datetime
    appointment_id: UUID | None = None


@dataclass(frozen=True)
class RecordWithdrawal:
    """Intake recorded that the case was withdrawn (CaseWithdrawn)."""

    case_id: UUID
    reason: WithdrawalReason
