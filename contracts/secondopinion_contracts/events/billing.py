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
from secondopinion_contracts.fields import AppointmentId, CaseId, InvoiceId, tokyo_date, utc_instant

Yen = int


class _BillingEvent(EventData):
    SERVICE: ClassVar[str] = "billing"
    case_id: CaseId
    invoice_id: InvoiceId


class InvoiceIssued(_BillingEvent):
    """The self-pay fee for the confirmed consultation, fixed by the fee schedule in force."""

    NAME: ClassVar[str] = "InvoiceIssued"
    appointment_id: AppointmentId
    mode: Mode = Field(description="The consultation's mode, which sets the fee.")
    amount_excl_tax: Yen = Field(ge=0, description="The fee before consumption tax, in yen.")
    tax: Yen = Field(ge=0, description="The consumption tax, in yen.")
    total: Yen = Field(ge=0, description="What the patient pays, tax included, in yen.")
    tax_rate_percent: int = Field(ge=0, le=100, description="The consumption tax rate applied, in percent.")
    currency: Literal["JPY"] = Field("JPY", description="Always JPY: amounts are integer yen.")
    payment_channel: PaymentChannel = Field(description="How the invoice is to be paid.")
    fee_schedule_effective_from: date = tokyo_date("The first day of the fee schedule applied")


class InvoiceVoided(_BillingEvent):
    """The consultation was cancelled before anything was paid: nothing is owed."""

    NAME: ClassVar[str] = "InvoiceVoided"
    reason: InvoiceVoidReason = Field(description="Why the invoice no longer stands.")


class PaymentCaptured(_BillingEvent):
    """The fee was paid."""

    NAME: ClassVar[str] = "PaymentCaptured"
    amount: Yen = Field(gt=0, description="The amount paid, in yen.")
    method: PaymentMethod = Field(description="How it was paid.")
    captured_at: datetime = utc_instant("When the payment was taken")
    gateway_charge_id: str | None = Field(None, max_length=100,
                                          description="The payment gateway's charge id, for online card payments.")
    appointment_id: UUID | None = Field(None, description="The appointment paid for (added after the first release).")


class PaymentFailed(_BillingEvent):
    """An online card payment failed; it may be tried again."""

    NAME: ClassVar[str] = "PaymentFailed"
    amount: Yen = Field(gt=0, description="The amount that was to be paid, in yen.")
    reason: PaymentFailureReason = Field(description="Why it failed.")
    attempt: int = Field(ge=1, description="Which attempt this was, from 1.")


class RefundIssued(_BillingEvent):
    """Money was paid back to the patient."""

    NAME: ClassVar[str] = "RefundIssued"
    refund_id: UUID = Field(description="This refund.")
    amount: Yen = Field(gt=0, description="The amount refunded now, in yen.")
    reason: RefundReason = Field(description="Why it was refunded.")
    refunded_total: Yen = Field(gt=0, description="All refunds of the invoice so far, this one included.")
    fully_refunded: bool = Field(description="Everything paid on the invoice has been refunded.")
    refunded_at: datetime | None = utc_instant("When the refund was made (added after the first release)",
                                               default=None)


class ReceiptIssued(_BillingEvent):
    """The receipt (a qualified invoice) was issued for the payment."""

    NAME: ClassVar[str] = "ReceiptIssued"
    receipt_number: str = Field(min_length=1, max_length=40, description="The receipt's number, printed on it.")
    issued_on: date = tokyo_date("When the receipt was issued")
    total: Yen = Field(ge=0, description="The total on the receipt, tax included, in yen.")
    tax: Yen = Field(ge=0, description="The consumption tax on the receipt, in yen.")
    qualified_invoice_registration_number: str = Field(
        pattern=r"^T[0-9]{13}$", description="The hospital's qualified-invoice registration number (T and 13 digits).")


EVENTS: tuple[type[EventData], ...] = (
    InvoiceIssued,
    InvoiceVoided,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
    ReceiptIssued,
)
