"""Billing's commands: what the cashier or the desk asks, and what billing does on scheduling's events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from secondopinion_contracts.codes import (
    CancellationReason,
    CancelledBy,
    Mode,
    PaymentFailureReason,
    PaymentMethod,
    RefundReason,
)


@dataclass(frozen=True)
class IssueInvoice:
    """SlotConfirmed: the consultation is fixed, so its fee is owed. `noted_at` is when scheduling recorded it."""

    invoice_id: UUID
    case_id: UUID
    appointment_id: UUID
    mode: Mode
    start: datetime
    end: datetime
    noted_at: datetime


@dataclass(frozen=True)
class NoteReschedule:
    """AppointmentRescheduled: same appointment, same invoice, another date."""

    invoice_id: UUID
    case_id: UUID
    appointment_id: UUID
    start: datetime
    end: datetime
    noted_at: datetime


@dataclass(frozen=True)
class NoteCancellation:
    """AppointmentCancelled: before payment the invoice is voided, after it the hospital's cancellation refunds."""

    invoice_id: UUID
    case_id: UUID
    appointment_id: UUID
    cancelled_by: CancelledBy
    reason: CancellationReason
    refund_id: UUID


@dataclass(frozen=True)
class NoteCompletion:
    invoice_id: UUID
    case_id: UUID
    appointment_id: UUID
    mode: Mode
    completed_at: datetime


@dataclass(frozen=True)
class CapturePayment:
    """The cashier takes the fee at the counter (cash or card)."""

    invoice_id: UUID
    method: PaymentMethod
    amount: int
    today: date
    at: datetime


@dataclass(frozen=True)
class ChargeCaptured:
    charge_id: str


@dataclass(frozen=True)
class ChargeDeclined:
    code: str


@dataclass(frozen=True)
class ChargeUnavailable:
    """The gateway kept timing out or failing: the outcome of the charge is unknown."""

    reason: PaymentFailureReason


ChargeOutcome = ChargeCaptured | ChargeDeclined | ChargeUnavailable


@dataclass(frozen=True)
class RecordChargeOutcome:
    invoice_id: UUID
    attempt: int
    outcome: ChargeOutcome
    at: datetime


@dataclass(frozen=True)
class RetryCharge:
    invoice_id: UUID


@dataclass(frozen=True)
class IssueRefund:
    invoice_id: UUID
    refund_id: UUID
    amount: int
    reason: RefundReason
    at: datetime


@dataclass(frozen=True)
class IssueReceipt:
    """The desk issues the payment's receipt; its number is taken from the year's counter when it is recorded."""

    invoice_id: UUID
    issued_on: date


@dataclass(frozen=True)
class KeepSealedPayer:
    """CaseSubmitted: the payer's name as intake sealed it with the case's key, for printing on a receipt."""

    case_id: UUID
    payer_name_sealed: str
