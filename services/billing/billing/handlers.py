"""One handler per billing command: load the invoice, let the domain decide, append.

Reactions to scheduling's events run inside the consumer's inbox transaction (`conn`), so their effect
commits with the inbox row. Nothing here calls the payment gateway: the charge worker does, outside any
transaction, and reports the outcome through `record_charge_outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

from billing import domain
from billing.commands import (
    CapturePayment,
    ChargeOutcome,
    IssueInvoice,
    IssueReceipt,
    IssueRefund,
    NoteCancellation,
    NoteCompletion,
    NoteReschedule,
    RecordChargeOutcome,
    RetryCharge,
)
from billing.store import invoice_repository, receipt_number, take_receipt_number
from eventkit.aggregate import AggregateRepository
from eventkit.clock import Clock, tokyo_date
from eventkit.db import Conn
from eventkit.errors import NotFound
from eventkit.events import Actor, CommandContext, Event, RecordedEvent
from eventkit.store import ConcurrencyError, EventStore
from secondopinion_contracts.codes import PaymentMethod, RefundReason

SERVICE = "billing"
RECEIPT_ATTEMPTS = 10

Decide = Callable[[domain.Invoice], Sequence[Event]]


@dataclass
class BillingHandlers:
    store: EventStore
    fees: domain.FeeSchedule
    qualified_invoice_number: str
    clock: Clock

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def today(self) -> date:
        return tokyo_date(self.clock())

    @property
    def invoices(self) -> AggregateRepository[domain.Invoice]:
        return invoice_repository(self.store)

    # --- reactions to scheduling's events (inside the inbox transaction) -----------------------------------

    async def issue_invoice(self, command: IssueInvoice, context: CommandContext, *, conn: Conn) -> list[RecordedEvent]:
        return await self.invoices.execute(
            command.invoice_id, lambda invoice: domain.issue(command, invoice, self.fees), context, conn=conn)

    async def note_reschedule(self, command: NoteReschedule, context: CommandContext, *,
                              conn: Conn) -> list[RecordedEvent]:
        return await self.invoices.execute(command.invoice_id, lambda invoice: domain.reschedule(command, invoice),
                                           context, conn=conn)

    async def note_cancellation(self, command: NoteCancellation, context: CommandContext, *,
                                conn: Conn) -> list[RecordedEvent]:
        return await self.invoices.execute(command.invoice_id, lambda invoice: domain.cancel(command, invoice),
                                           context, conn=conn)

    async def note_completion(self, command: NoteCompletion, context: CommandContext, *,
                              conn: Conn) -> list[RecordedEvent]:
        return await self.invoices.execute(command.invoice_id, lambda invoice: domain.complete(command, invoice),
                                           context, conn=conn)

    # --- the charge worker's report ------------------------------------------------------------------------

    async def record_charge_outcome(self, invoice_id: UUID, case_id: UUID, attempt: int, key: str,
                                    outcome: ChargeOutcome) -> list[RecordedEvent]:
        command = RecordChargeOutcome(invoice_id=invoice_id, attempt=attempt, outcome=outcome, at=self.now())
        context = CommandContext(actor=Actor.service(SERVICE), correlation_id=str(case_id),
                                 causation_id=f"charge:{key}", command="RecordChargeOutcome")
        return await self.invoices.execute(
            invoice_id, lambda invoice: domain.record_charge_outcome(command, invoice), context)

    # --- the desk's commands -------------------------------------------------------------------------------

    async def _context(self, invoice_id: UUID, actor: Actor, command: str) -> CommandContext:
        invoice, _ = await self.invoices.load(invoice_id)
        if not invoice.issued or invoice.case_id is None:
            raise NotFound(f"no invoice {invoice_id}")
        return CommandContext(actor=actor, correlation_id=str(invoice.case_id), causation_id=f"command:{uuid4()}",
                              command=command)

    async def _execute(self, invoice_id: UUID, actor: Actor, command: str, decide: Decide) -> list[RecordedEvent]:
        context = await self._context(invoice_id, actor, command)
        return await self.invoices.execute(invoice_id, decide, context)

    async def capture_payment(self, invoice_id: UUID, method: PaymentMethod, amount: int,
                              actor: Actor) -> list[RecordedEvent]:
        command = CapturePayment(invoice_id=invoice_id, method=method, amount=amount, today=self.today(), at=self.now())
        return await self._execute(invoice_id, actor, "CapturePayment",
                                   lambda invoice: domain.capture_at_counter(command, invoice))

    async def retry_charge(self, invoice_id: UUID, actor: Actor) -> list[RecordedEvent]:
        command = RetryCharge(invoice_id=invoice_id)
        return await self._execute(invoice_id, actor, "RetryCharge",
                                   lambda invoice: domain.retry_charge(command, invoice))

    async def issue_refund(self, invoice_id: UUID, amount: int, reason: RefundReason,
                           actor: Actor) -> list[RecordedEvent]:
        command = IssueRefund(invoice_id=invoice_id, refund_id=uuid4(), amount=amount, reason=reason, at=self.now())
        return await self._execute(invoice_id, actor, "IssueRefund", lambda invoice: domain.refund(command, invoice))

    async def issue_receipt(self, invoice_id: UUID, actor: Actor) -> list[RecordedEvent]:
        context = await self._context(invoice_id, actor, "IssueReceipt")
        for attempt in range(1, RECEIPT_ATTEMPTS + 1):
            try:
                return await self._issue_receipt_once(invoice_id, context)
            except ConcurrencyError:
                if attempt == RECEIPT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _issue_receipt_once(self, invoice_id: UUID, context: CommandContext) -> list[RecordedEvent]:
        """Number and record the receipt in one transaction, so a rejected or failed one gives its number back."""
        # Checked before the counter is locked: a refused request never waits on other receipts.
        invoice, _ = await self.invoices.load(invoice_id)
        domain.check_receipt(invoice)
        issued_on = self.today()
        async with self.store.transaction() as conn:
            number = receipt_number(issued_on.year, await take_receipt_number(conn, issued_on.year))
            command = IssueReceipt(invoice_id=invoice_id, receipt_number=number, issued_on=issued_on,
                                   qualified_invoice_registration_number=self.qualified_invoice_number)
            return await self.invoices.execute(
                invoice_id, lambda invoice: domain.issue_receipt(command, invoice), context, conn=conn)
