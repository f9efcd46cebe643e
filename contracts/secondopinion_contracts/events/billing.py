"""Events published by billing (routing keys `billing.<EventName>.v<N>`). Money is integer yen."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import (
    InvoiceVoidReason,
    Mode,
    PaymentChannel,
    PaymentFailureReason,
    PaymentMethod,
    RefundReason,
)

Yen = int


class _BillingEvent(EventData):
    SERVICE: ClassVar[str] = "billing"
    case_id: UUID
    invoice_id: UUID


class InvoiceIssued(_BillingEvent):
    """The self-pay fee for the confirmed consultation, fixed by the fee schedule in force."""

    NAME: ClassVar[str] = "InvoiceIssued"
    appointment_id: UUID
    mode: Mode
    amount_excl_tax: Yen = Field(ge=0)
    tax: Yen = Field(ge=0)
    total: Yen = Field(ge=0)
    tax_rate_percent: int = Field(ge=0, le=100)
    currency: Literal["JPY"] = "JPY"
    payment_channel: PaymentChannel
    fee_schedule_effective_from: date


class InvoiceVoided(_BillingEvent):
    """The consultation was cancelled before anything was paid: nothing is owed."""

    NAME: ClassVar[str] = "InvoiceVoided"
    reason: InvoiceVoidReason


class PaymentCaptured(_BillingEvent):
    NAME: ClassVar[str] = "PaymentCaptured"
    amount: Yen = Field(gt=0)
    method: PaymentMethod
    captured_at: datetime
    gateway_charge_id: str | None = Field(None, max_length=100)
    appointment_id: UUID | None = Field(None, description="The appointment paid for (added after the first release).")


class PaymentFailed(_BillingEvent):
    NAME: ClassVar[str] = "PaymentFailed"
    amount: Yen = Field(gt=0)
    reason: PaymentFailureReason
    attempt: int = Field(ge=1)


class RefundIssued(_BillingEvent):
    NAME: ClassVar[str] = "RefundIssued"
    refund_id: UUID
    amount: Yen = Field(gt=0)
    reason: RefundReason
    refunded_total: Yen = Field(gt=0, description="All refunds of the invoice so far, this one included.")
    fully_refunded: bool
    refunded_at: datetime | None = Field(None, description="When the refund was made (added after the first release).")


class ReceiptIssued(_BillingEvent):
    NAME: ClassVar[str] = "ReceiptIssued"
    receipt_number: str = Field(min_length=1, max_length=40)
    issued_on: date
    total: Yen = Field(ge=0)
    tax: Yen = Field(ge=0)
    qualified_invoice_registration_number: str = Field(pattern=r"^T[0-9]{13}$")


EVENTS: tuple[type[EventData], ...] = (
    InvoiceIssued,
    InvoiceVoided,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
    ReceiptIssued,
)
