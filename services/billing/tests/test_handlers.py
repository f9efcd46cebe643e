"""Billing's handlers on fakes (an in-memory event store and unit of work, an in-memory receipt book and sealed
payers): given what happened to an invoice, when a command (the desk's, the charge worker's, or one another
service's event becomes), then the events appended and what the outbox would publish."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from billing.bootstrap import bind_handlers
from billing.commands import (
    CapturePayment,
    ChargeCaptured,
    IssueInvoice,
    IssueReceipt,
    KeepSealedPayer,
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
from eventkit.unit_of_work import UnitOfWork
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, PaymentMethod, RefundReason
from secondopinion_contracts.events.billing import InvoiceIssued, PaymentCaptured, ReceiptIssued, RefundIssued

CASE_ID = uuid.uuid4()
APPOINTMENT_ID = uuid.uuid4()
INVOICE_ID = invoice_id_for(APPOINTMENT_ID)
CONSULTATION = tokyo(2026, 12, 1, 10)
OPENING = tokyo(2026, 12, 1, 9, 30)
CLOCK = SettableClock(OPENING)


@dataclass
class InMemoryReceiptBook:
    issued: dict[int, int] = field(default_factory=dict)

    async def next_number(self, uow: UnitOfWork, year: int) -> str:
        self.issued[year] = self.issued.get(year, 0) + 1
        return f"R{year}-{self.issued[year]:06d}"


@dataclass
class InMemorySealedPayers:
    kept: dict[uuid.UUID, str] = field(default_factory=dict)

    async def keep(self, uow: UnitOfWork, case_id: uuid.UUID, sealed: str) -> None:
        self.kept.setdefault(case_id, sealed)


RECEIPTS = InMemoryReceiptBook()
PAYERS = InMemorySealedPayers()
HANDLERS = bind_handlers(BillingSettings(BILLING_QUALIFIED_INVOICE_NUMBER=QUALIFIED_INVOICE_NUMBER), CLOCK,
                         receipts=RECEIPTS, payers=PAYERS)
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


async def test_a_receipt_is_numbered_from_the_years_book_once_per_payment(store: InMemoryEventStore) -> None:
    await handle(store, confirmed())
    await handle(store, at_the_counter(), CASHIER)
    store.given(f"invoice-{INVOICE_ID}", "invoice", [])
    RECEIPTS.issued.clear()
    await handle(store, IssueReceipt(invoice_id=INVOICE_ID, issued_on=date(2026, 12, 1)), CASHIER)
    [receipt] = store.new_events()
    assert isinstance(receipt, ReceiptIssued)
    assert (receipt.receipt_number, receipt.qualified_invoice_registration_number) == (
        "R2026-000001", QUALIFIED_INVOICE_NUMBER)
    with pytest.raises(CommandRejected) as again:
        await handle(store, IssueReceipt(invoice_id=INVOICE_ID, issued_on=date(2026, 12, 1)), CASHIER)
    assert again.value.code == "receipt_already_issued"
    assert RECEIPTS.issued == {2026: 1}, "a refused receipt takes no number"


async def test_the_sealed_payer_name_is_kept_once_per_case(store: InMemoryEventStore) -> None:
    await handle(store, KeepSealedPayer(case_id=CASE_ID, payer_name_sealed="Zmlyc3Q"))
    await handle(store, KeepSealedPayer(case_id=CASE_ID, payer_name_sealed="c2Vjb25k"))
    assert PAYERS.kept[CASE_ID] == "Zmlyc3Q"
    assert store.new_events() == []
