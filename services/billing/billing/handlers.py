"""One handler per billing command, the desk's, the charge worker's and those scheduling's and intake's events become
(consumers.py): each `(command, uow)` plus what bootstrap binds to it, with the table of command -> handler at the
bottom.

Nothing here calls the payment gateway: the charge worker does, outside any transaction, and reports the outcome as
a RecordChargeOutcome command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from billing import domain
from billing.commands import (
    CapturePayment,
    IssueInvoice,
    IssueReceipt,
    IssueRefund,
    KeepSealedPayer,
    NoteCancellation,
    NoteCompletion,
    NoteReschedule,
    RecordChargeOutcome,
    RetryCharge,
)
from billing.payers import SealedPayers
from billing.repository import INVOICES, ReceiptBook
from eventkit.clock import Clock
from eventkit.events import RecordedEvent
from eventkit.unit_of_work import UnitOfWork

# --- the desk's commands -----------------------------------------------------------------------------------------


async def capture_payment(command: CapturePayment, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.capture_at_counter(command, invoice))


async def retry_charge(command: RetryCharge, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.retry_charge(command, invoice))


async def issue_refund(command: IssueRefund, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.refund(command, invoice))


async def issue_receipt(command: IssueReceipt, uow: UnitOfWork, *, qualified_invoice_number: str,
                        receipts: ReceiptBook) -> list[RecordedEvent]:
    """Number and record the receipt in one unit of work, so a rejected or failed one gives its number back."""
    invoice = await uow.load(INVOICES, command.invoice_id)
    # Checked before the counter is locked: a refused request never waits on other receipts.
    domain.check_receipt(invoice.state)
    number = await receipts.next_number(uow, command.issued_on.year)
    uow.save(invoice, domain.issue_receipt(command, invoice.state, receipt_number=number,
                                           registration_number=qualified_invoice_number))
    return await uow.commit()


# --- the charge worker's report ----------------------------------------------------------------------------------

async def record_charge_outcome(command: RecordChargeOutcome, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id,
                             lambda invoice: domain.record_charge_outcome(command, invoice))


# --- what other services' events become (consumers.py) -----------------------------------------------------------

async def issue_invoice_when_slot_confirmed(command: IssueInvoice, uow: UnitOfWork, *,
                                            fees: domain.FeeSchedule) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.issue(command, invoice, fees))


async def move_consultation_when_appointment_rescheduled(command: NoteReschedule,
                                                         uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.reschedule(command, invoice))


async def void_or_refund_when_appointment_cancelled(command: NoteCancellation, uow: UnitOfWork, *,
                                                    clock: Clock) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id,
                             lambda invoice: domain.cancel(command, invoice, at=clock()))


async def request_charge_when_consultation_completed(command: NoteCompletion,
                                                     uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(INVOICES, command.invoice_id, lambda invoice: domain.complete(command, invoice))


async def keep_the_sealed_payer_name_when_case_submitted(command: KeepSealedPayer, uow: UnitOfWork, *,
                                                        payers: SealedPayers) -> None:
    await payers.keep(uow, command.case_id, command.payer_name_sealed)


HANDLERS: dict[type, Callable[..., Any]] = {
    CapturePayment: capture_payment,
    RetryCharge: retry_charge,
    IssueRefund: issue_refund,
    IssueReceipt: issue_receipt,
    RecordChargeOutcome: record_charge_outcome,
    IssueInvoice: issue_invoice_when_slot_confirmed,
    NoteReschedule: move_consultation_when_appointment_rescheduled,
    NoteCancellation: void_or_refund_when_appointment_cancelled,
    NoteCompletion: request_charge_when_consultation_completed,
    KeepSealedPayer: keep_the_sealed_payer_name_when_case_submitted,
}
