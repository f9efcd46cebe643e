"""Billing's handlers on fakes (an in-memory event store and unit of work): given what happened to an invoice, when
a command (the desk's, the charge worker's, or one another service's event becomes), then the events appended and
what the outbox would publish. Receipts (the year's counter) and sealed payer names (their table) are SQL on the
unit of work's connection, covered on the real database by test_api.py."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from billing.bootstrap import bind_handlers
from billing.commands import (
    CapturePayment,
    ChargeCaptured,
    IssueInvoice,
    NoteCancellation,
    RecordChargeOutcome,
)
from billing.domain import invoice_id_for
from billing.repository import EVENT_TYPES
from billing.settings import BillingSettings
from billing.testing import QUALIFIED_INVOICE_NUMBER, tokyo
from eventkit.errors import CommandRejected
from eventkit.events import Actor, CommandContext
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.testing import SettableClock
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, PaymentMethod, RefundReason
from secondopinion_contracts.events.billing import InvoiceIssued, PaymentCaptured, RefundIssued

CASE_ID = uuid.uuid4()
APPOINTMENT_ID = uuid.uuid4()
INVOICE_ID = invoice_id_for(APPOINTMENT_ID)
CONSULTATION = tokyo(2026, 12, 1, 10)
OPENING = tokyo(2026, 12, 1, 9, 30)
CLOCK = SettableClock(OPENING)
HANDLERS = bind_handlers(BillingSettings(BILLING_QUALIFIED_INVOICE_NUMBER=QUALIFIED_INVOICE_NUMBER), CLOCK)
CASHIER = CommandContext(actor=Actor(id="cashier-7", role="cashier"), correlation_id=str(CASE_ID))
BILLING = CommandContext(actor=Actor.service("billing"), correlation_id=str(CASE_ID))


@pytest.fixture
def store() -> InMemoryEventStore:
    CLOCK.now = OPENING
    return InMemoryEventStore("billing", EVENT_TYPES)


async def handle(store: InMemoryEventStore, command: object, context: CommandContext = BILLING) -> None:
    await HANDLERS[type(command)](command, InMemoryUnitOfWork(store, context))


def confirmed(mode: Mode = Mode.IN_PERSON) -> IssueInvoice:
    return IssueInvoice(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID, mode=mode,
                        start=CONSULTATION, end=CONSULTATION + timedelta(hours=1), noted_at=CLOCK.now)


def at_the_counter(amount: int = 33_000) -> CapturePayment:
    return CapturePayment(invoice_id=INVOICE_ID, method=PaymentMethod.CASH, amount=amount,
                          today=date(2026, 12, 1), at=CLOCK.now)


async def test_a_confirmation_delivered_twice_issues_one_invoice_at_the_fee_in_force(
        store: InMemoryEventStore) -> None:
    await handle(store, confirmed())
    await handle(store, confirmed())
    issued = [event for event in store.new_events() if isinstance(event, InvoiceIssued)]
    assert len(issued) == 1
    assert (issued[0].amount_excl_tax, issued[0].tax, issued[0].total) == (30_000, 3_000, 33_000)
    assert [envelope.type for envelope in store.outbox] == [InvoiceIssued.type_name()]


async def test_the_cashier_captures_the_fee_and_the_payment_is_published_as_theirs(store: InMemoryEventStore) -> None:
    await handle(store, confirmed())
    store.given(f"invoice-{INVOICE_ID}", "invoice", [])  # the invoice is given
    await handle(store, at_the_counter(), CASHIER)
    [captured] = store.new_events()
    assert captured == PaymentCaptured(case_id=CASE_ID, invoice_id=INVOICE_ID, amount=33_000,
                                       method=PaymentMethod.CASH, captured_at=CLOCK.now,
                                       appointment_id=APPOINTMENT_ID)
    [published] = store.outbox
    assert (published.actorid, published.actorrole) == ("cashier-7", "cashier")


async def test_a_wrong_amount_is_refused_and_nothing_is_recorded(store: InMemoryEventStore) -> None:
    await handle(store, confirmed())
    store.given(f"invoice-{INVOICE_ID}", "invoice", [])
    with pytest.raises(CommandRejected) as refused:
        await handle(store, at_the_counter(30_000), CASHIER)
    assert refused.value.code == "wrong_amount"
    assert store.new_events() == []


async def test_the_hospitals_cancellation_after_payment_refunds_in_full_at_billings_clock(
        store: InMemoryEventStore) -> None:
    await handle(store, confirmed())
    await handle(store, at_the_counter(), CASHIER)
    store.given(f"invoice-{INVOICE_ID}", "invoice", [])
    CLOCK.now = tokyo(2026, 12, 1, 11)
    await handle(store, NoteCancellation(invoice_id=INVOICE_ID, case_id=CASE_ID, appointment_id=APPOINTMENT_ID,
                                         cancelled_by=CancelledBy.HOSPITAL,
                                         reason=CancellationReason.PHYSICIAN_UNAVAILABLE, refund_id=uuid.uuid4()))
    refunds = [event for event in store.new_events() if isinstance(event, RefundIssued)]
    assert [(refund.amount, refund.reason, refund.fully_refunded, refund.refunded_at) for refund in refunds] == [
        (33_000, RefundReason.CANCELLED_BY_HOSPITAL, True, tokyo(2026, 12, 1, 11))]


async def test_a_charge_outcome_for_an_attempt_not_pending_records_nothing(store: InMemoryEventStore) -> None:
    await handle(store, confirmed(Mode.ONLINE))
    store.given(f"invoice-{INVOICE_ID}", "invoice", [])
    await handle(store, RecordChargeOutcome(invoice_id=INVOICE_ID, attempt=1, outcome=ChargeCaptured("ch_1"),
                                            at=CLOCK.now))
    assert store.new_events() == []
