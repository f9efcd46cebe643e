"""Billing's HTTP API for the cashier and the desk: counter payments, charge retries, refunds, receipts,
and the invoices and the day's takings to read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from billing.commands import CapturePayment, IssueReceipt, IssueRefund, RetryCharge
from billing.domain import ChargeStatus, InvoiceStatus
from billing.payers import payer_name as open_payer_name
from billing.queries import InvoiceQueries
from billing.receipt_pdf import ReceiptFacts, receipt_document, refund_document, render_receipt, render_refund
from eventkit.audit import record_access
from eventkit.auth import allow
from eventkit.bootstrap import Dispatcher
from eventkit.clock import tokyo_date
from eventkit.documents import PDF_MEDIA_TYPE, HospitalSettings, issued_pdf_marking_copies
from eventkit.errors import NotFound
from eventkit.events import Actor, CommandContext, RecordedEvent
from eventkit.http import command_context, from_app_state, now, on_pool
from eventkit.input_policy import DeskDate, RequestModel
from secondopinion_contracts.codes import PaymentMethod, RefundReason

router = APIRouter(tags=["invoices"])

# Integer yen only: a JSON number with a fraction (or a string) is refused, never rounded.
Amount = Annotated[int, Field(strict=True, gt=0, le=10_000_000, description="Integer yen.")]


class Strict(RequestModel):
    pass


class PaymentIn(Strict):
    method: Literal["cash", "card"]
    amount: Amount


class RefundIn(Strict):
    amount: Amount
    reason: RefundReason


class CommandResult(BaseModel):
    invoice_id: UUID
    status: str
    events: list[str]
    invoice: dict[str, Any]


Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
Queries = Annotated[InvoiceQueries, Depends(on_pool(InvoiceQueries))]
Now = Annotated[datetime, Depends(now)]
Hospital = Annotated[HospitalSettings, Depends(from_app_state("hospital", HospitalSettings))]
# The hospital's registration number as configured: printed on a receipt issued before it was recorded on it.
RegistrationNumber = Annotated[str, Depends(from_app_state("qualified_invoice_number", str))]
# Who does what: the cashier handles money and issues receipts; the desk (coordinators) retries a declined
# online charge; auditors read.
Cashier = Annotated[Actor, Depends(allow("cashier"))]
Desk = Annotated[Actor, Depends(allow("cashier", "coordinator"))]
Reader = Annotated[Actor, Depends(allow("cashier", "coordinator", "auditor"))]
Accounts = Annotated[Actor, Depends(allow("cashier", "auditor"))]


async def _context(q: InvoiceQueries, invoice_id: UUID, actor: Actor, command: str) -> CommandContext:
    """The context of a command on an issued invoice: its events are correlated with the invoice's case."""
    case_id = await q.case_of(invoice_id)
    if case_id is None:
        raise NotFound(f"no invoice {invoice_id}")
    return command_context(actor, case_id, command)


async def _result(invoice_id: UUID, recorded: list[RecordedEvent], q: InvoiceQueries) -> CommandResult:
    view = await q.get(invoice_id)
    assert view is not None
    return CommandResult(invoice_id=invoice_id, status=view["status"], events=[event.name for event in recorded],
                         invoice=view)


@router.post("/invoices/{invoice_id}/payments", status_code=201, response_model=CommandResult)
async def capture_payment(invoice_id: UUID, body: PaymentIn, actor: Cashier, handle: Handle, q: Queries,
                          now: Now) -> CommandResult:
    """The cashier records the fee paid at the counter (in person, on the consultation day)."""
    command = CapturePayment(invoice_id=invoice_id, method=PaymentMethod(body.method), amount=body.amount,
                             today=tokyo_date(now), at=now)
    recorded = await handle(command, await _context(q, invoice_id, actor, "CapturePayment"))
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/charge-retries", status_code=202, response_model=CommandResult)
async def retry_charge(invoice_id: UUID, actor: Desk, handle: Handle, q: Queries) -> CommandResult:
    """Charge the online fee again after a failure; the charge itself happens in the background."""
    recorded = await handle(RetryCharge(invoice_id=invoice_id), await _context(q, invoice_id, actor, "RetryCharge"))
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/refunds", status_code=201, response_model=CommandResult)
async def issue_refund(invoice_id: UUID, body: RefundIn, actor: Cashier, handle: Handle, q: Queries,
                       now: Now) -> CommandResult:
    command = IssueRefund(invoice_id=invoice_id, refund_id=uuid4(), amount=body.amount, reason=body.reason, at=now)
    recorded = await handle(command, await _context(q, invoice_id, actor, "IssueRefund"))
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/receipt", status_code=201, response_model=CommandResult)
async def issue_receipt(invoice_id: UUID, actor: Cashier, handle: Handle, q: Queries, now: Now) -> CommandResult:
    """Issue the receipt for the payment (once; the invoice shows its number afterwards)."""
    command = IssueReceipt(invoice_id=invoice_id, issued_on=tokyo_date(now))
    recorded = await handle(command, await _context(q, invoice_id, actor, "IssueReceipt"))
    return await _result(invoice_id, recorded, q)


async def _payer_name(request: Request, q: InvoiceQueries, actor: Actor, case_id: UUID) -> str | None:
    """The payer's name for one receipt, as intake opens it for billing acting for the cashier (see
    billing.payers); *** once erased."""
    # No database connection is held while intake is asked.
    payer_name = await open_payer_name(request.app.state.intake, case_id, request.headers["authorization"])
    if payer_name is not None:
        async with q.pool.acquire() as conn:
            await record_access(conn, actor, case_id, "read_payer_name_for_receipt")
    return payer_name


async def _paid_invoice(invoice_id: UUID, registration_number: str,
                        q: InvoiceQueries) -> tuple[ReceiptFacts, UUID]:
    view = await q.get(invoice_id)
    if view is None:
        raise NotFound(f"no invoice {invoice_id}")
    return ReceiptFacts.from_view(view, registration_number), view["case_id"]


@router.get("/invoices/{invoice_id}/receipt.pdf", tags=["invoices"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The receipt, A4 PDF"}})
async def print_receipt_pdf(invoice_id: UUID, actor: Cashier, request: Request, q: Queries, hospital: Hospital,
                            registration_number: RegistrationNumber) -> Response:
    """The issued receipt as a qualified invoice (適格請求書) to hand over or post. The first print is the
    original; every later print of it says 再発行 (reissued)."""
    facts, case_id = await _paid_invoice(invoice_id, registration_number, q)
    receipt_document(facts, None, hospital, reissue=False)  # 404 before intake is asked
    payer_name = await _payer_name(request, q, actor, case_id)
    return await issued_pdf_marking_copies(
        q.pool, "receipt", facts.receipt_reference,
        lambda reissue: render_receipt(facts, payer_name, hospital, reissue), f"receipt-{facts.receipt_number}.pdf")


@router.get("/invoices/{invoice_id}/refund.pdf", tags=["invoices"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The refund note, A4 PDF"}})
async def print_refund_pdf(invoice_id: UUID, actor: Cashier, request: Request, q: Queries, hospital: Hospital,
                           registration_number: RegistrationNumber) -> Response:
    """The refund note (返金明細書, a qualified return invoice) for everything refunded on the invoice so far;
    printed again, it says 再発行."""
    facts, case_id = await _paid_invoice(invoice_id, registration_number, q)
    refund_document(facts, None, hospital, reissue=False)  # 404 before intake is asked
    payer_name = await _payer_name(request, q, actor, case_id)
    return await issued_pdf_marking_copies(
        q.pool, "refund", facts.refund_reference,
        lambda reissue: render_refund(facts, payer_name, hospital, reissue), f"refund-{invoice_id}.pdf")


@router.get("/invoices/{invoice_id}/receipt")
async def print_receipt(invoice_id: UUID, actor: Cashier, request: Request, q: Queries) -> dict[str, Any]:
    """The issued receipt as printed: its number, the hospital's registration number, the amounts with the
    consumption tax, and the payer's name, opened for this answer only (see billing.payers)."""
    view = await q.get(invoice_id)
    if view is None:
        raise NotFound(f"no invoice {invoice_id}")
    receipt = view["receipt"]
    if receipt is None:
        raise NotFound(f"no receipt has been issued for invoice {invoice_id}")
    case_id: UUID = view["case_id"]
    payer_name = await _payer_name(request, q, actor, case_id)
    return {
        **receipt, "invoice_id": invoice_id, "case_id": case_id, "payer_name": payer_name, "currency": "JPY",
        "amount_excl_tax": view["amount_excl_tax"], "tax_rate_percent": view["tax_rate_percent"],
        "tax": view["tax"], "total": view["total"], "payment": view["payment"],
    }


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: UUID, _: Reader, q: Queries) -> dict[str, Any]:
    view = await q.get(invoice_id)
    if view is None:
        raise NotFound(f"no invoice {invoice_id}")
    return view


# OFFSET is a PostgreSQL bigint: a larger offset could not even be sent to the database.
@router.get("/invoices")
async def list_invoices(_: Reader, q: Queries, case_id: UUID | None = None, status: InvoiceStatus | None = None,
                        charge_status: Annotated[ChargeStatus | None, Query(
                            description="the online card charge's: `failed` lists the charges to retry")] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> dict[str, Any]:
    """Issued invoices, the latest first, narrowed by case, status and online charge status; `next_offset` is where
    the next page starts (null: none)."""
    rows = await q.list(case_id, status.value if status else None, limit + 1, offset,
                        charge_status.value if charge_status else None)
    return {"invoices": rows[:limit], "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}


@router.get("/takings")
async def takings(_: Accounts, q: Queries, now: Now,
                  day: Annotated[DeskDate | None, Query(alias="date",
                                                        description="Asia/Tokyo; today if omitted")] = None,
                  ) -> dict[str, Any]:
    """The day's takings: captured minus refunded, by payment method (Asia/Tokyo business date)."""
    return await q.takings(day or tokyo_date(now))


@router.get("/transactions")
async def transactions(_: Accounts, q: Queries, now: Now,
                       day: Annotated[DeskDate | None, Query(alias="date",
                                                             description="Asia/Tokyo; today if omitted")] = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100,
                       offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> dict[str, Any]:
    """The day's transactions behind its takings, for closing the till: every payment captured and refund issued
    that day (Asia/Tokyo), in the order the money moved; `next_offset` is where the next page starts (null: none)."""
    day = day or tokyo_date(now)
    rows = await q.transactions(day, limit + 1, offset)
    return {"date": day, "currency": "JPY", "transactions": rows[:limit], "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}
