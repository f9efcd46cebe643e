"""The Invoice aggregate and the fee schedule: decide(command, state) -> events, evolve(state, event). Pure.

Rules (docs/domain.md, the fees): the self-pay fee is 30,000 JPY in person and 40,000 JPY online, plus 10%
consumption tax (33,000 / 44,000 JPY). In person it is paid at the counter on the consultation day, before
the consultation; online it is charged to the card registered on the telemedicine platform.

One invoice per appointment, one stream per invoice; its id is derived from the appointment id, so
a second SlotConfirmed for the same appointment (even with another event id) finds the invoice already
issued. Scheduling's events may arrive in any order: what billing learns before the invoice exists
(a cancellation, a reschedule, the completion) is kept as private events in the same stream and taken
into account when the confirmation arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.commands import (
    CapturePayment,
    ChargeCaptured,
    ChargeDeclined,
    IssueInvoice,
    IssueReceipt,
    IssueRefund,
    NoteCancellation,
    NoteCompletion,
    NoteReschedule,
    RecordChargeOutcome,
    RetryCharge,
)
from eventkit.clock import tokyo_date
from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Event, PrivateEvent
from secondopinion_contracts.codes import (
    CancellationReason,
    CancelledBy,
    InvoiceVoidReason,
    Mode,
    PaymentChannel,
    PaymentFailureReason,
    PaymentMethod,
    RefundReason,
)
from secondopinion_contracts.events.billing import (
    InvoiceIssued,
    InvoiceVoided,
    PaymentCaptured,
    PaymentFailed,
    ReceiptIssued,
    RefundIssued,
)

# Fixed forever: invoice ids already issued are derived from it.
INVOICE_NAMESPACE = UUID("6b1f3a52-3c0e-5d8e-9a4b-2f61c0d7e8a1")

PAYMENT_CHANNEL = {
    Mode.IN_PERSON: PaymentChannel.COUNTER_BEFORE_CONSULTATION,
    Mode.ONLINE: PaymentChannel.TELEMEDICINE_PLATFORM_CARD,
}
COUNTER_METHODS = (PaymentMethod.CASH, PaymentMethod.CARD)


def invoice_id_for(appointment_id: UUID) -> UUID:
    return uuid5(INVOICE_NAMESPACE, f"appointment:{appointment_id}")


def idempotency_key(invoice_id: UUID, attempt: int) -> str:
    return f"invoice-{invoice_id}-attempt-{attempt}"


# --- Money -----------------------------------------------------------------------------------------------

Yen = Annotated[int, Field(strict=True, ge=0)]

TAX_RULE = ("consumption tax = floor(amount excluding tax x rate), computed once per invoice on its one line "
            "(one rounding per invoice and tax rate, as the qualified-invoice rules require)")


def consumption_tax(amount_excl_tax: int, rate_percent: int) -> int:
    """The consumption tax of one invoice: rounded down, once, on the invoice's amount (never per item).

    Integer arithmetic only: yen amounts never pass through a float.
    """
    return amount_excl_tax * rate_percent // 100


class FeeScheduleEntry(BaseModel):
    """The fees in force from `effective_from` (a Tokyo date) until the next entry's date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date
    tax_rate_percent: int = Field(strict=True, ge=0, le=100)
    fees: dict[Mode, Yen]

    @model_validator(mode="after")
    def _every_mode_has_a_fee(self) -> FeeScheduleEntry:
        missing = [mode.value for mode in Mode if mode not in self.fees]
        if missing:
            raise ValueError(f"no fee for mode(s) {', '.join(missing)}")
        return self


DEFAULT_FEE_SCHEDULE = (
    # The patient guide revised 2025-05: 30,000 JPY in person, 40,000 JPY online, plus 10% tax.
    FeeScheduleEntry(effective_from=date(2025, 5, 1), tax_rate_percent=10,
                     fees={Mode.IN_PERSON: 30_000, Mode.ONLINE: 40_000}),
)


class Price(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount_excl_tax: int
    tax: int
    total: int
    tax_rate_percent: int
    effective_from: date


class FeeSchedule:
    """Which fee applies to a consultation: the entry in force on the consultation date (Asia/Tokyo)."""

    def __init__(self, entries: Iterable[FeeScheduleEntry]) -> None:
        self.entries = tuple(sorted(entries, key=lambda entry: entry.effective_from))
        check_fee_schedule(self.entries)

    def in_force_on(self, day: date) -> FeeScheduleEntry:
        applicable = [entry for entry in self.entries if entry.effective_from <= day]
        if not applicable:
            raise CommandRejected(f"no fee is in force on {day.isoformat()}; the fee schedule starts on "
                                  f"{self.entries[0].effective_from.isoformat()}", code="no_fee_in_force")
        return applicable[-1]

    def price(self, mode: Mode, day: date) -> Price:
        entry = self.in_force_on(day)
        amount = entry.fees[mode]
        tax = consumption_tax(amount, entry.tax_rate_percent)
        return Price(amount_excl_tax=amount, tax=tax, total=amount + tax, tax_rate_percent=entry.tax_rate_percent,
                     effective_from=entry.effective_from)


def check_fee_schedule(entries: Sequence[FeeScheduleEntry]) -> None:
    if not entries:
        raise ValueError("the fee schedule needs at least one entry")
    dates = [entry.effective_from for entry in entries]
    if len(set(dates)) != len(dates):
        raise ValueError("two fee schedule entries take effect on the same date")


# --- Events billing keeps to itself ----------------------------------------------------------------------

class _InvoiceNote(PrivateEvent):
    invoice_id: UUID
    case_id: UUID
    appointment_id: UUID


class ConsultationScheduled(_InvoiceNote):
    """The consultation's date as scheduling last fixed it (confirmation or reschedule).

    `noted_at` is when scheduling recorded that fact: an older fact arriving late never overwrites a newer one.
    """

    NAME: ClassVar[str] = "ConsultationScheduled"
    start: datetime
    end: datetime
    noted_at: datetime


class AppointmentCancellationNoted(_InvoiceNote):
    NAME: ClassVar[str] = "AppointmentCancellationNoted"
    cancelled_by: CancelledBy
    reason: CancellationReason


class ConsultationCompletionNoted(_InvoiceNote):
    NAME: ClassVar[str] = "ConsultationCompletionNoted"
    mode: Mode
    completed_at: datetime


class ChargeRequested(PrivateEvent):
    """The card registered on the telemedicine platform is to be charged (the charge worker does it).

    Every call for one attempt carries the same idempotency key, so a call retried after a timeout can
    never charge twice. A new attempt (new key) follows only a definitive decline.
    """

    NAME: ClassVar[str] = "ChargeRequested"
    invoice_id: UUID
    case_id: UUID
    attempt: int = Field(ge=1)
    amount: int = Field(gt=0)
    idempotency_key: str


PRIVATE_EVENTS: tuple[type[PrivateEvent], ...] = (
    ConsultationScheduled, AppointmentCancellationNoted, ConsultationCompletionNoted, ChargeRequested,
)


# --- State -----------------------------------------------------------------------------------------------

class InvoiceStatus(StrEnum):
    NOT_ISSUED = "not_issued"
    ISSUED = "issued"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOID = "void"


class ChargeStatus(StrEnum):
    PENDING = "pending"
    FAILED = "failed"
    CAPTURED = "captured"


class Invoice(BaseModel):
    """What billing knows of one appointment's fee, folded from the invoice stream."""

    model_config = ConfigDict(frozen=True)

    invoice_id: UUID | None = None
    case_id: UUID | None = None
    appointment_id: UUID | None = None
    issued: bool = False
    mode: Mode | None = None
    amount_excl_tax: int = 0
    tax: int = 0
    total: int = 0
    tax_rate_percent: int = 0
    payment_channel: PaymentChannel | None = None
    fee_schedule_effective_from: date | None = None
    consultation_start: datetime | None = None
    consultation_end: datetime | None = None
    schedule_noted_at: datetime | None = None
    void_reason: InvoiceVoidReason | None = None
    cancelled_by: CancelledBy | None = None
    cancellation_reason: CancellationReason | None = None
    completed_at: datetime | None = None
    captured_amount: int = 0
    payment_method: PaymentMethod | None = None
    captured_at: datetime | None = None
    gateway_charge_id: str | None = None
    refunded_total: int = 0
    charge_attempt: int = 0
    charge_status: ChargeStatus | None = None
    charge_failure: PaymentFailureReason | None = None
    receipt_number: str | None = None
    receipt_issued_on: date | None = None
    receipt_registration_number: str | None = None

    @property
    def voided(self) -> bool:
        return self.void_reason is not None

    @property
    def refundable(self) -> int:
        return self.captured_amount - self.refunded_total

    @property
    def consultation_date(self) -> date | None:
        return tokyo_date(self.consultation_start) if self.consultation_start else None

    @property
    def status(self) -> InvoiceStatus:
        if not self.issued:
            return InvoiceStatus.NOT_ISSUED
        if self.voided:
            return InvoiceStatus.VOID
        if self.captured_amount == 0:
            return InvoiceStatus.ISSUED
        if self.refunded_total == 0:
            return InvoiceStatus.PAID
        return InvoiceStatus.REFUNDED if self.refundable == 0 else InvoiceStatus.PARTIALLY_REFUNDED


# --- Reactions to scheduling's events --------------------------------------------------------------------

def _schedule_note(invoice: Invoice, command: IssueInvoice | NoteReschedule) -> list[Event]:
    """The consultation's date, if this fact is newer than the one billing holds and changes it."""
    if invoice.schedule_noted_at is not None and command.noted_at <= invoice.schedule_noted_at:
        return []
    if (invoice.consultation_start, invoice.consultation_end) == (command.start, command.end):
        return []
    return [ConsultationScheduled(invoice_id=command.invoice_id, case_id=command.case_id,
                                  appointment_id=command.appointment_id, start=command.start, end=command.end,
                                  noted_at=command.noted_at)]


def _charge_request(invoice_id: UUID, case_id: UUID, attempt: int, amount: int) -> ChargeRequested:
    return ChargeRequested(invoice_id=invoice_id, case_id=case_id, attempt=attempt, amount=amount,
                           idempotency_key=idempotency_key(invoice_id, attempt))


def issue(command: IssueInvoice, invoice: Invoice, fees: FeeSchedule) -> list[Event]:
    """Issue the invoice once per appointment, at the fee in force on the consultation date.

    The consultation date, not the processing date, picks the fee: it is the date the service is supplied
    (what the tax rate follows), the date the patient was quoted for, and it does not depend on how late a
    redelivered event is handled.
    """
    if invoice.cancelled_by is not None:
        return []  # the cancellation overtook the confirmation: nothing is owed
    events = _schedule_note(invoice, command)
    if invoice.issued:
        return events  # the same appointment confirmed again: the invoice exists
    scheduled = fold(invoice, events)
    assert scheduled.consultation_date is not None
    price = fees.price(command.mode, scheduled.consultation_date)
    events.append(InvoiceIssued(
        case_id=command.case_id, invoice_id=command.invoice_id, appointment_id=command.appointment_id,
        mode=command.mode, amount_excl_tax=price.amount_excl_tax, tax=price.tax, total=price.total,
        tax_rate_percent=price.tax_rate_percent, payment_channel=PAYMENT_CHANNEL[command.mode],
        fee_schedule_effective_from=price.effective_from,
    ))
    if command.mode is Mode.ONLINE and invoice.completed_at is not None:
        events.append(_charge_request(command.invoice_id, command.case_id, 1, price.total))
    return events


def reschedule(command: NoteReschedule, invoice: Invoice) -> list[Event]:
    """A reschedule keeps the invoice (and its amount); only the consultation date moves."""
    if invoice.cancelled_by is not None or invoice.voided:
        return []
    return _schedule_note(invoice, command)


def _void_reason(reason: CancellationReason) -> InvoiceVoidReason:
    if reason is CancellationReason.CASE_WITHDRAWN:
        return InvoiceVoidReason.CASE_WITHDRAWN
    return InvoiceVoidReason.APPOINTMENT_CANCELLED


def cancel(command: NoteCancellation, invoice: Invoice, *, at: datetime) -> list[Event]:
    """Before payment the invoice is voided; after payment a cancellation by the hospital refunds in full.

    A patient who cancels after paying is refunded only if the desk decides so (POST .../refunds). After
    the consultation took place the fee stays owed: scheduling does not cancel a completed consultation,
    and an online charge may already be on its way.
    """
    if invoice.cancelled_by is not None:
        return []
    events: list[Event] = [AppointmentCancellationNoted(
        invoice_id=command.invoice_id, case_id=command.case_id, appointment_id=command.appointment_id,
        cancelled_by=command.cancelled_by, reason=command.reason)]
    if not invoice.issued or invoice.voided:
        return events
    if invoice.captured_amount > 0:
        if command.cancelled_by is CancelledBy.HOSPITAL and invoice.refundable > 0:
            events.append(_refund(invoice, command.refund_id, invoice.refundable, RefundReason.CANCELLED_BY_HOSPITAL,
                                  at))
        return events
    if invoice.completed_at is None:
        events.append(InvoiceVoided(case_id=command.case_id, invoice_id=command.invoice_id,
                                    reason=_void_reason(command.reason)))
    return events


def complete(command: NoteCompletion, invoice: Invoice) -> list[Event]:
    """Online, the consultation's completion is when the registered card is charged."""
    if invoice.completed_at is not None:
        return []
    events: list[Event] = [ConsultationCompletionNoted(
        invoice_id=command.invoice_id, case_id=command.case_id, appointment_id=command.appointment_id,
        mode=command.mode, completed_at=command.completed_at)]
    if (invoice.issued and not invoice.voided and invoice.mode is Mode.ONLINE and invoice.captured_amount == 0
            and invoice.charge_attempt == 0):
        events.append(_charge_request(command.invoice_id, command.case_id, 1, invoice.total))
    return events


# --- The desk's commands ---------------------------------------------------------------------------------

def _issued(invoice: Invoice) -> tuple[UUID, UUID]:
    if not invoice.issued or invoice.invoice_id is None or invoice.case_id is None:
        raise NotFound("no such invoice")
    return invoice.invoice_id, invoice.case_id


def _not_void(invoice: Invoice) -> None:
    if invoice.voided:
        assert invoice.void_reason is not None
        raise CommandRejected(f"the invoice is void ({invoice.void_reason.value}): nothing is owed",
                              code="invoice_void")


def capture_at_counter(command: CapturePayment, invoice: Invoice) -> list[Event]:
    """In person the fee is paid at the counter, on the consultation day, before the consultation."""
    invoice_id, case_id = _issued(invoice)
    _not_void(invoice)
    if invoice.mode is Mode.ONLINE:
        raise CommandRejected("an online consultation is charged to the card registered on the telemedicine "
                              "platform, not paid at the counter", code="paid_online")
    if command.method not in COUNTER_METHODS:
        raise CommandRejected(f"the counter takes cash or card, not {command.method.value}", code="wrong_method")
    if invoice.captured_amount > 0:
        assert invoice.payment_method is not None
        assert invoice.captured_at is not None
        raise CommandRejected(
            f"the invoice was already paid: {invoice.captured_amount} JPY by {invoice.payment_method.value} "
            f"at {invoice.captured_at.isoformat()}", code="already_paid")
    if command.today != invoice.consultation_date:
        assert invoice.consultation_date is not None
        raise CommandRejected(f"the fee is paid on the consultation day ({invoice.consultation_date.isoformat()}), "
                              f"not on {command.today.isoformat()}", code="not_consultation_day")
    if command.amount != invoice.total:
        raise CommandRejected(f"the amount {command.amount} JPY does not match the invoice total {invoice.total} JPY",
                              code="wrong_amount")
    return [PaymentCaptured(case_id=case_id, invoice_id=invoice_id, amount=command.amount, method=command.method,
                            captured_at=command.at, appointment_id=invoice.appointment_id)]


def record_charge_outcome(command: RecordChargeOutcome, invoice: Invoice) -> list[Event]:
    """What the gateway answered for the pending attempt; an answer for any other attempt changes nothing."""
    invoice_id, case_id = _issued(invoice)
    if invoice.charge_status is not ChargeStatus.PENDING or invoice.charge_attempt != command.attempt:
        return []
    outcome = command.outcome
    if isinstance(outcome, ChargeCaptured):
        return [PaymentCaptured(case_id=case_id, invoice_id=invoice_id, amount=invoice.total,
                                method=PaymentMethod.ONLINE_CARD, captured_at=command.at,
                                gateway_charge_id=outcome.charge_id, appointment_id=invoice.appointment_id)]
    reason = PaymentFailureReason.CARD_DECLINED if isinstance(outcome, ChargeDeclined) else outcome.reason
    return [PaymentFailed(case_id=case_id, invoice_id=invoice_id, amount=invoice.total, reason=reason,
                          attempt=command.attempt)]


def retry_charge(command: RetryCharge, invoice: Invoice) -> list[Event]:
    """The desk charges the card again after a failure.

    After a decline the card is charged anew (next attempt, new idempotency key). After a timeout or a
    gateway error the first charge may have gone through: the same attempt is retried with the same key,
    so the gateway answers with that charge instead of making a second one.
    """
    invoice_id, case_id = _issued(invoice)
    _not_void(invoice)
    if invoice.mode is not Mode.ONLINE:
        raise CommandRejected("an in-person fee is paid at the counter, not charged to a card on file",
                              code="paid_at_counter")
    if invoice.captured_amount > 0:
        raise CommandRejected("the invoice was already paid", code="already_paid")
    if invoice.completed_at is None:
        raise CommandRejected("the online fee is charged when the consultation is completed; it is not yet",
                              code="consultation_not_completed")
    if invoice.charge_status is ChargeStatus.PENDING:
        raise CommandRejected(f"charge attempt {invoice.charge_attempt} is still in progress",
                              code="charge_in_progress")
    declined = invoice.charge_failure is PaymentFailureReason.CARD_DECLINED
    attempt = invoice.charge_attempt + 1 if declined or invoice.charge_attempt == 0 else invoice.charge_attempt
    return [_charge_request(invoice_id, case_id, attempt, invoice.total)]


def _refund(invoice: Invoice, refund_id: UUID, amount: int, reason: RefundReason, at: datetime) -> RefundIssued:
    assert invoice.case_id is not None
    assert invoice.invoice_id is not None
    refunded_total = invoice.refunded_total + amount
    return RefundIssued(case_id=invoice.case_id, invoice_id=invoice.invoice_id, refund_id=refund_id, amount=amount,
                        reason=reason, refunded_total=refunded_total,
                        fully_refunded=refunded_total == invoice.captured_amount, refunded_at=at)


def refund(command: IssueRefund, invoice: Invoice) -> list[Event]:
    """A refund never exceeds what was captured less what was already refunded."""
    _issued(invoice)
    if invoice.captured_amount == 0:
        raise CommandRejected("nothing was paid on this invoice, so nothing can be refunded", code="nothing_captured")
    if command.amount > invoice.refundable:
        raise CommandRejected(
            f"a refund of {command.amount} JPY exceeds the {invoice.refundable} JPY still refundable "
            f"({invoice.captured_amount} JPY captured, {invoice.refunded_total} JPY refunded)",
            code="refund_exceeds_captured")
    return [_refund(invoice, command.refund_id, command.amount, command.reason, command.at)]


def check_receipt(invoice: Invoice) -> None:
    """A receipt is issued once per payment; asking again is refused with the number already issued.

    A second original would let the same payment be claimed twice (medical-expense deduction, insurers);
    the issued receipt's data stays readable on the invoice for a reprint of the same number.
    """
    _issued(invoice)
    _not_void(invoice)
    if invoice.captured_amount == 0:
        raise CommandRejected("nothing has been paid on this invoice yet", code="not_paid")
    if invoice.receipt_number is not None:
        assert invoice.receipt_issued_on is not None
        raise CommandRejected(f"receipt {invoice.receipt_number} was already issued on "
                              f"{invoice.receipt_issued_on.isoformat()}", code="receipt_already_issued",
                              details=[invoice.receipt_number])
    if invoice.refundable == 0:
        raise CommandRejected("the payment was refunded in full", code="fully_refunded")


def issue_receipt(command: IssueReceipt, invoice: Invoice, *, receipt_number: str,
                  registration_number: str) -> list[Event]:
    """`receipt_number`: the next of the year's counter; `registration_number`: the hospital's qualified-invoice
    issuer registration number."""
    check_receipt(invoice)
    invoice_id, case_id = _issued(invoice)
    return [ReceiptIssued(case_id=case_id, invoice_id=invoice_id, receipt_number=receipt_number,
                          issued_on=command.issued_on, total=invoice.total, tax=invoice.tax,
                          qualified_invoice_registration_number=registration_number)]


# --- Evolve ----------------------------------------------------------------------------------------------

def evolve(invoice: Invoice, event: Event) -> Invoice:
    match event:
        case ConsultationScheduled():
            return invoice.model_copy(update={
                "invoice_id": event.invoice_id, "case_id": event.case_id, "appointment_id": event.appointment_id,
                "consultation_start": event.start, "consultation_end": event.end, "schedule_noted_at": event.noted_at})
        case InvoiceIssued():
            return invoice.model_copy(update={
                "invoice_id": event.invoice_id, "case_id": event.case_id, "appointment_id": event.appointment_id,
                "issued": True, "mode": event.mode, "amount_excl_tax": event.amount_excl_tax, "tax": event.tax,
                "total": event.total, "tax_rate_percent": event.tax_rate_percent,
                "payment_channel": event.payment_channel,
                "fee_schedule_effective_from": event.fee_schedule_effective_from})
        case InvoiceVoided():
            return invoice.model_copy(update={"void_reason": event.reason})
        case AppointmentCancellationNoted():
            return invoice.model_copy(update={
                "invoice_id": event.invoice_id, "case_id": event.case_id, "appointment_id": event.appointment_id,
                "cancelled_by": event.cancelled_by, "cancellation_reason": event.reason})
        case ConsultationCompletionNoted():
            return invoice.model_copy(update={
                "invoice_id": event.invoice_id, "case_id": event.case_id, "appointment_id": event.appointment_id,
                "completed_at": event.completed_at})
        case ChargeRequested():
            return invoice.model_copy(update={"charge_attempt": event.attempt, "charge_status": ChargeStatus.PENDING,
                                              "charge_failure": None})
        case PaymentCaptured():
            charged = {"charge_status": ChargeStatus.CAPTURED} if event.method is PaymentMethod.ONLINE_CARD else {}
            return invoice.model_copy(update={
                "captured_amount": event.amount, "payment_method": event.method, "captured_at": event.captured_at,
                "gateway_charge_id": event.gateway_charge_id, **charged})
        case PaymentFailed():
            return invoice.model_copy(update={"charge_status": ChargeStatus.FAILED, "charge_failure": event.reason})
        case RefundIssued():
            return invoice.model_copy(update={"refunded_total": event.refunded_total})
        case ReceiptIssued():
            return invoice.model_copy(update={
                "receipt_number": event.receipt_number, "receipt_issued_on": event.issued_on,
                "receipt_registration_number": event.qualified_invoice_registration_number})
    return invoice


def fold(invoice: Invoice, events: Iterable[Event]) -> Invoice:
    for event in events:
        invoice = evolve(invoice, event)
    return invoice
