"""Fees, tax and invoice rules: given past events, when a command, then new events (pure, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from billing import domain
from billing.commands import (
    CapturePayment,
    ChargeCaptured,
    ChargeDeclined,
    ChargeUnavailable,
    IssueInvoice,
    IssueReceipt,
    IssueRefund,
    NoteCancellation,
    NoteCompletion,
    NoteReschedule,
    RecordChargeOutcome,
    RetryCharge,
)
from billing.settings import BillingSettings
from eventkit.clock import TOKYO
from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Event
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

FEES = domain.FeeSchedule(domain.DEFAULT_FEE_SCHEDULE)
CASE_ID = uuid.uuid4()
APPOINTMENT_ID = uuid.uuid4()
INVOICE_ID = domain.invoice_id_for(APPOINTMENT_ID)
CONSULTATION = datetime(2026, 12, 1, 14, 0, tzinfo=TOKYO)
CONFIRMED_AT = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=TOKYO)


def fold(events: list[Event], invoice: domain.Invoice | None = None) -> domain.Invoice:
    return domain.fold(invoice or domain.Invoice(), events)


def confirmation(mode: Mode = Mode.IN_PERSON, start: datetime = CONSULTATION,
                 noted_at: datetime = CONFIRMED_AT) -> IssueInvoice:
    return IssueInvoice(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, mode=mode, start=start,
                        end=start + timedelta(hours=1), noted_at=noted_at)


def cancellation(by: CancelledBy, reason: CancellationReason = CancellationReason.PATIENT_REQUEST) -> NoteCancellation:
    return NoteCancellation(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, cancelled_by=by,
                            reason=reason, refund_id=uuid.uuid4())


def completion(mode: Mode = Mode.ONLINE) -> NoteCompletion:
    return NoteCompletion(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, mode=mode,
                          completed_at=CONSULTATION + timedelta(hours=1))


def counter(amount: int = 33_000, method: PaymentMethod = PaymentMethod.CASH,
            today: date = date(2026, 12, 1)) -> CapturePayment:
    return CapturePayment(invoice_id=INVOICE_ID, method=method, amount=amount, today=today, at=NOW)


def issued(mode: Mode = Mode.IN_PERSON) -> tuple[domain.Invoice, list[Event]]:
    events = domain.issue(confirmation(mode), domain.Invoice(), FEES)
    return fold(events), events


def paid(method: PaymentMethod = PaymentMethod.CASH) -> domain.Invoice:
    invoice, _ = issued()
    return fold(domain.capture_at_counter(counter(method=method), invoice), invoice)


def rejected(code: str, call: object) -> None:
    assert callable(call)
    with pytest.raises(CommandRejected) as raised:
        call()
    assert raised.value.code == code, raised.value.message


# --- fees and tax ----------------------------------------------------------------------------------------

def test_the_two_fees_are_exact_to_the_yen() -> None:
    in_person = FEES.price(Mode.IN_PERSON, date(2026, 12, 1))
    online = FEES.price(Mode.ONLINE, date(2026, 12, 1))
    assert (in_person.amount_excl_tax, in_person.tax, in_person.total) == (30_000, 3_000, 33_000)
    assert (online.amount_excl_tax, online.tax, online.total) == (40_000, 4_000, 44_000)
    assert in_person.tax_rate_percent == online.tax_rate_percent == 10
    assert all(isinstance(value, int) for value in (*in_person.model_dump().values(), *online.model_dump().values())
               if not isinstance(value, date))


@pytest.mark.parametrize(("amount", "rate", "tax"), [
    (30_000, 10, 3_000), (40_000, 10, 4_000), (12_345, 10, 1_234), (999, 8, 79), (1, 10, 0), (0, 10, 0),
])
def test_consumption_tax_is_rounded_down_once_in_integers(amount: int, rate: int, tax: int) -> None:
    assert domain.consumption_tax(amount, rate) == tax


def test_the_tax_is_taken_once_on_the_invoice_amount_not_per_item() -> None:
    # Rounded per item, two items of 1,005 yen would owe 100 + 100; once per invoice it is 201.
    assert domain.consumption_tax(2_010, 10) == 201
    assert domain.consumption_tax(1_005, 10) * 2 == 200


def test_the_fee_in_force_on_the_consultation_date_applies() -> None:
    raised = domain.FeeScheduleEntry(effective_from=date(2026, 10, 1), tax_rate_percent=10,
                                     fees={Mode.IN_PERSON: 35_000, Mode.ONLINE: 45_000})
    fees = domain.FeeSchedule([raised, *domain.DEFAULT_FEE_SCHEDULE])
    assert fees.price(Mode.IN_PERSON, date(2026, 9, 30)).total == 33_000
    assert fees.price(Mode.IN_PERSON, date(2026, 10, 1)).total == 38_500
    assert fees.price(Mode.ONLINE, date(2026, 10, 1)).effective_from == date(2026, 10, 1)
    rejected("no_fee_in_force", lambda: fees.price(Mode.ONLINE, date(2025, 4, 30)))


def test_the_consultation_date_is_the_tokyo_date() -> None:
    raised = domain.FeeScheduleEntry(effective_from=date(2026, 12, 2), tax_rate_percent=10,
                                     fees={Mode.IN_PERSON: 35_000, Mode.ONLINE: 45_000})
    fees = domain.FeeSchedule([*domain.DEFAULT_FEE_SCHEDULE, raised])
    # 2026-12-01 15:30 UTC is already 2 December in Tokyo.
    start = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    events = domain.issue(confirmation(start=start), domain.Invoice(), fees)
    assert [e.total for e in events if isinstance(e, InvoiceIssued)] == [38_500]


def test_fee_schedules_refuse_floats_missing_modes_and_twin_dates() -> None:
    with pytest.raises(ValidationError):
        domain.FeeScheduleEntry.model_validate(
            {"effective_from": "2025-05-01", "tax_rate_percent": 10, "fees": {"in_person": 30000.0, "online": 40000}})
    with pytest.raises(ValidationError, match="no fee for mode"):
        domain.FeeScheduleEntry.model_validate(
            {"effective_from": "2025-05-01", "tax_rate_percent": 10, "fees": {"in_person": 30000}})
    with pytest.raises(ValueError, match="same date"):
        domain.FeeSchedule([*domain.DEFAULT_FEE_SCHEDULE, *domain.DEFAULT_FEE_SCHEDULE])


def test_the_fee_schedule_comes_from_configuration_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = ('[{"effective_from": "2025-05-01", "tax_rate_percent": 10, "fees": {"in_person": 30000, '
                '"online": 40000}}, {"effective_from": "2027-04-01", "tax_rate_percent": 10, '
                '"fees": {"in_person": 32000, "online": 42000}}]')
    assert BillingSettings().fee_schedule == domain.DEFAULT_FEE_SCHEDULE
    monkeypatch.setenv("BILLING_FEE_SCHEDULE", schedule)
    fees = domain.FeeSchedule(BillingSettings().fee_schedule)
    assert fees.price(Mode.ONLINE, date(2027, 4, 1)).total == 46_200
    monkeypatch.setenv("BILLING_FEE_SCHEDULE", schedule.replace("32000", "32000.5"))
    with pytest.raises(ValidationError):
        BillingSettings()
    monkeypatch.delenv("BILLING_FEE_SCHEDULE")
    with pytest.raises(ValidationError):
        BillingSettings(BILLING_QUALIFIED_INVOICE_NUMBER="1234567890123")
    with pytest.raises(ValidationError, match="BILLING_QUALIFIED_INVOICE_NUMBER"):
        BillingSettings(APP_PROFILE="production", BILLING_GATEWAY_URL="https://pay.example")


# --- issuing ---------------------------------------------------------------------------------------------

def test_a_confirmed_slot_issues_the_invoice_with_its_fee_and_payment_channel() -> None:
    invoice, events = issued(Mode.ONLINE)
    assert isinstance(events[-1], InvoiceIssued)
    assert events[-1].model_dump(exclude={"case_id", "invoice_id", "appointment_id"}) == {
        "mode": Mode.ONLINE, "amount_excl_tax": 40_000, "tax": 4_000, "total": 44_000, "tax_rate_percent": 10,
        "currency": "JPY", "payment_channel": PaymentChannel.TELEMEDICINE_PLATFORM_CARD,
        "fee_schedule_effective_from": date(2025, 5, 1)}
    assert invoice.status is domain.InvoiceStatus.ISSUED
    assert invoice.consultation_date == date(2026, 12, 1)
    assert domain.invoice_id_for(APPOINTMENT_ID) == INVOICE_ID  # derived, the same every time


def test_a_second_confirmation_of_the_same_appointment_issues_nothing() -> None:
    invoice, _ = issued()
    assert domain.issue(confirmation(), invoice, FEES) == []
    assert domain.issue(confirmation(noted_at=CONFIRMED_AT + timedelta(minutes=5)), invoice, FEES) == []


def test_a_later_fee_change_never_alters_an_issued_invoice() -> None:
    invoice, _ = issued()
    dearer = domain.FeeSchedule([domain.FeeScheduleEntry(effective_from=date(2025, 5, 1), tax_rate_percent=10,
                                                         fees={Mode.IN_PERSON: 50_000, Mode.ONLINE: 60_000})])
    assert domain.issue(confirmation(), invoice, dearer) == []
    rejected("wrong_amount", lambda: domain.capture_at_counter(counter(amount=55_000), invoice))
    assert isinstance(domain.capture_at_counter(counter(amount=33_000), invoice)[0], PaymentCaptured)


def test_a_reschedule_keeps_the_invoice_and_moves_the_consultation_day() -> None:
    invoice, _ = issued()
    later = CONSULTATION + timedelta(days=2)
    moved = NoteReschedule(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, start=later,
                           end=later + timedelta(hours=1), noted_at=CONFIRMED_AT + timedelta(days=1))
    events = domain.reschedule(moved, invoice)
    assert [type(e) for e in events] == [domain.ConsultationScheduled]
    after = fold(events, invoice)
    assert (after.total, after.consultation_date) == (33_000, date(2026, 12, 3))
    rejected("not_consultation_day", lambda: domain.capture_at_counter(counter(), after))
    assert domain.capture_at_counter(counter(today=date(2026, 12, 3)), after)


def test_a_reschedule_that_arrives_before_the_confirmation_wins_over_it() -> None:
    later = CONSULTATION + timedelta(days=2)
    moved = NoteReschedule(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, start=later,
                           end=later + timedelta(hours=1), noted_at=CONFIRMED_AT + timedelta(days=1))
    noted = fold(domain.reschedule(moved, domain.Invoice()))
    invoice = fold(domain.issue(confirmation(), noted, FEES), noted)
    assert invoice.issued
    assert invoice.consultation_date == date(2026, 12, 3)


def test_a_cancellation_that_overtakes_the_confirmation_means_no_invoice() -> None:
    noted = fold(domain.cancel(cancellation(CancelledBy.PATIENT), domain.Invoice(), at=NOW))
    assert not noted.issued
    assert domain.issue(confirmation(), noted, FEES) == []


def test_a_completion_that_overtakes_the_confirmation_charges_once_the_invoice_is_issued() -> None:
    noted = fold(domain.complete(completion(), domain.Invoice()))
    events = domain.issue(confirmation(Mode.ONLINE), noted, FEES)
    assert [type(e) for e in events] == [domain.ConsultationScheduled, InvoiceIssued, domain.ChargeRequested]
    charge = events[-1]
    assert isinstance(charge, domain.ChargeRequested)
    assert (charge.attempt, charge.amount) == (1, 44_000)


# --- cancellation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "void_reason"), [
    (CancellationReason.PATIENT_REQUEST, InvoiceVoidReason.APPOINTMENT_CANCELLED),
    (CancellationReason.CASE_WITHDRAWN, InvoiceVoidReason.CASE_WITHDRAWN),
])
def test_a_cancellation_before_payment_voids_the_invoice(reason: CancellationReason,
                                                         void_reason: InvoiceVoidReason) -> None:
    invoice, _ = issued()
    events = domain.cancel(cancellation(CancelledBy.PATIENT, reason), invoice, at=NOW)
    voided = [e for e in events if isinstance(e, InvoiceVoided)]
    assert [e.reason for e in voided] == [void_reason]
    after = fold(events, invoice)
    assert after.status is domain.InvoiceStatus.VOID
    rejected("invoice_void", lambda: domain.capture_at_counter(counter(), after))
    assert domain.cancel(cancellation(CancelledBy.PATIENT), after, at=NOW) == []


def test_a_cancellation_by_the_hospital_after_payment_refunds_in_full() -> None:
    invoice = paid()
    events = domain.cancel(cancellation(CancelledBy.HOSPITAL, CancellationReason.PHYSICIAN_UNAVAILABLE), invoice,
                           at=NOW)
    refunds = [e for e in events if isinstance(e, RefundIssued)]
    assert [(r.amount, r.reason, r.refunded_total, r.fully_refunded) for r in refunds] == [
        (33_000, RefundReason.CANCELLED_BY_HOSPITAL, 33_000, True)]
    assert fold(events, invoice).status is domain.InvoiceStatus.REFUNDED


def test_a_cancellation_by_the_hospital_refunds_only_what_is_left() -> None:
    invoice = paid()
    invoice = fold(domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 3_000, RefundReason.GOODWILL, NOW), invoice),
                   invoice)
    events = domain.cancel(cancellation(CancelledBy.HOSPITAL), invoice, at=NOW)
    assert [(e.amount, e.refunded_total) for e in events if isinstance(e, RefundIssued)] == [(30_000, 33_000)]


def test_a_patient_cancelling_after_payment_is_refunded_only_by_the_desk() -> None:
    events = domain.cancel(cancellation(CancelledBy.PATIENT), paid(), at=NOW)
    assert [type(e) for e in events] == [domain.AppointmentCancellationNoted]


def test_a_completed_consultation_is_not_voided() -> None:
    invoice, _ = issued(Mode.ONLINE)
    invoice = fold(domain.complete(completion(), invoice), invoice)
    assert [type(e) for e in domain.cancel(cancellation(CancelledBy.PATIENT), invoice, at=NOW)] == [
        domain.AppointmentCancellationNoted]


# --- counter payment -------------------------------------------------------------------------------------

def test_the_cashier_takes_the_exact_fee_on_the_consultation_day() -> None:
    invoice, _ = issued()
    events = domain.capture_at_counter(counter(method=PaymentMethod.CARD), invoice)
    assert len(events) == 1
    captured = events[0]
    assert isinstance(captured, PaymentCaptured)
    assert (captured.amount, captured.method, captured.captured_at, captured.appointment_id) == (
        33_000, PaymentMethod.CARD, NOW, APPOINTMENT_ID)
    assert fold(events, invoice).status is domain.InvoiceStatus.PAID


def test_counter_payment_refusals_say_why() -> None:
    invoice, _ = issued()
    rejected("wrong_amount", lambda: domain.capture_at_counter(counter(amount=30_000), invoice))
    rejected("not_consultation_day", lambda: domain.capture_at_counter(counter(today=date(2026, 11, 30)), invoice))
    rejected("wrong_method", lambda: domain.capture_at_counter(counter(method=PaymentMethod.ONLINE_CARD), invoice))
    rejected("already_paid", lambda: domain.capture_at_counter(counter(), paid()))
    online, _ = issued(Mode.ONLINE)
    rejected("paid_online", lambda: domain.capture_at_counter(counter(amount=44_000), online))
    with pytest.raises(NotFound):
        domain.capture_at_counter(counter(), domain.Invoice())


# --- online charge ---------------------------------------------------------------------------------------

def charged(outcome: ChargeCaptured | ChargeDeclined | ChargeUnavailable, attempt: int = 1) -> domain.Invoice:
    invoice, _ = issued(Mode.ONLINE)
    invoice = fold(domain.complete(completion(), invoice), invoice)
    return fold(domain.record_charge_outcome(RecordChargeOutcome(INVOICE_ID, attempt, outcome, NOW), invoice), invoice)


def test_completing_an_online_consultation_requests_one_charge() -> None:
    invoice, _ = issued(Mode.ONLINE)
    events = domain.complete(completion(), invoice)
    charge = events[-1]
    assert isinstance(charge, domain.ChargeRequested)
    assert (charge.attempt, charge.amount, charge.idempotency_key) == (
        1, 44_000, domain.idempotency_key(INVOICE_ID, 1))
    assert domain.complete(completion(), fold(events, invoice)) == []


def test_completing_an_in_person_consultation_charges_nothing() -> None:
    invoice = paid()
    assert [type(e) for e in domain.complete(completion(Mode.IN_PERSON), invoice)] == [
        domain.ConsultationCompletionNoted]


def test_the_gateway_outcome_of_the_pending_attempt_is_recorded_once() -> None:
    invoice = charged(ChargeCaptured("ch_1"))
    assert invoice.status is domain.InvoiceStatus.PAID
    assert (invoice.payment_method, invoice.gateway_charge_id) == (PaymentMethod.ONLINE_CARD, "ch_1")
    again = RecordChargeOutcome(INVOICE_ID, 1, ChargeCaptured("ch_1"), NOW)
    assert domain.record_charge_outcome(again, invoice) == []


def test_after_a_decline_the_desk_retries_with_a_new_key() -> None:
    declined = charged(ChargeDeclined("card_declined"))
    assert (declined.charge_status, declined.charge_failure) == (domain.ChargeStatus.FAILED,
                                                                 PaymentFailureReason.CARD_DECLINED)
    retry = domain.retry_charge(RetryCharge(INVOICE_ID), declined)[0]
    assert isinstance(retry, domain.ChargeRequested)
    assert (retry.attempt, retry.idempotency_key) == (2, domain.idempotency_key(INVOICE_ID, 2))
    pending = fold([retry], declined)
    rejected("charge_in_progress", lambda: domain.retry_charge(RetryCharge(INVOICE_ID), pending))
    stale = RecordChargeOutcome(INVOICE_ID, 1, ChargeCaptured("ch_late"), NOW)
    assert domain.record_charge_outcome(stale, pending) == []


def test_after_a_timeout_the_desk_retries_the_same_attempt_and_key() -> None:
    invoice, _ = issued(Mode.ONLINE)
    pending = fold(domain.complete(completion(), invoice), invoice)
    timed_out = RecordChargeOutcome(INVOICE_ID, 1, ChargeUnavailable(PaymentFailureReason.GATEWAY_TIMEOUT), NOW)
    events = domain.record_charge_outcome(timed_out, pending)
    assert [(e.reason, e.attempt) for e in events if isinstance(e, PaymentFailed)] == [
        (PaymentFailureReason.GATEWAY_TIMEOUT, 1)]
    # The first charge may have gone through: only the same key can find out without charging twice.
    retry = domain.retry_charge(RetryCharge(INVOICE_ID), fold(events, pending))[0]
    assert isinstance(retry, domain.ChargeRequested)
    assert (retry.attempt, retry.idempotency_key) == (1, domain.idempotency_key(INVOICE_ID, 1))


def test_charge_retries_are_refused_where_they_make_no_sense() -> None:
    rejected("already_paid", lambda: domain.retry_charge(RetryCharge(INVOICE_ID), charged(ChargeCaptured("c"))))
    rejected("paid_at_counter", lambda: domain.retry_charge(RetryCharge(INVOICE_ID), issued()[0]))
    rejected("consultation_not_completed",
             lambda: domain.retry_charge(RetryCharge(INVOICE_ID), issued(Mode.ONLINE)[0]))


# --- refunds and receipts --------------------------------------------------------------------------------

def test_refunds_never_exceed_what_was_captured() -> None:
    invoice = paid()
    first = domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 10_000, RefundReason.OVERPAYMENT, NOW), invoice)
    invoice = fold(first, invoice)
    assert invoice.status is domain.InvoiceStatus.PARTIALLY_REFUNDED
    rejected("refund_exceeds_captured",
             lambda: domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 23_001, RefundReason.OTHER, NOW), invoice))
    last = domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 23_000, RefundReason.OTHER, NOW), invoice)
    assert [(e.refunded_total, e.fully_refunded) for e in last if isinstance(e, RefundIssued)] == [(33_000, True)]
    invoice = fold(last, invoice)
    rejected("refund_exceeds_captured",
             lambda: domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 1, RefundReason.OTHER, NOW), invoice))
    rejected("nothing_captured",
             lambda: domain.refund(IssueRefund(INVOICE_ID, uuid.uuid4(), 1, RefundReason.OTHER, NOW), issued()[0]))


def test_a_receipt_shows_the_tax_and_the_registration_number_and_is_issued_once() -> None:
    invoice = paid()
    command = IssueReceipt(INVOICE_ID, date(2026, 12, 1))
    events = domain.issue_receipt(command, invoice, receipt_number="R2026-000001",
                                  registration_number="T1234567890123")
    receipt = events[0]
    assert isinstance(receipt, ReceiptIssued)
    assert (receipt.total, receipt.tax, receipt.qualified_invoice_registration_number) == (
        33_000, 3_000, "T1234567890123")
    after = fold(events, invoice)
    with pytest.raises(CommandRejected) as second:
        domain.issue_receipt(command, after, receipt_number="R2026-000002", registration_number="T1234567890123")
    assert second.value.code == "receipt_already_issued"
    assert second.value.details == ["R2026-000001"]
    rejected("not_paid", lambda: domain.check_receipt(issued()[0]))
    refunded = fold(domain.cancel(cancellation(CancelledBy.HOSPITAL), invoice, at=NOW), invoice)
    rejected("fully_refunded", lambda: domain.check_receipt(refunded))
