"""Billing's HTTP API for the cashier and the desk: counter payments, charge retries, refunds, receipts,
and the invoices and the day's takings to read."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from billing.domain import InvoiceStatus
from billing.handlers import BillingHandlers
from billing.payers import IntakeKeys, IntakeUnavailable, sealed_payer
from billing.receipt_pdf import ReceiptFacts, receipt_document, refund_document, render_receipt, render_refund
from billing.store import InvoiceQueries
from eventkit.audit import record_access
from eventkit.auth import allow
from eventkit.documents import PDF_MEDIA_TYPE, issued_pdf_marking_copies
from eventkit.errors import NotFound
from eventkit.events import Actor, RecordedEvent
from secondopinion_contracts.codes import PaymentMethod, RefundReason

router = APIRouter(tags=["invoices"])

# Integer yen only: a JSON number with a fraction (or a string) is refused, never rounded.
Amount = Annotated[int, Field(strict=True, gt=0, le=10_000_000, description="Integer yen.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


# async, though nothing is awaited: FastAPI runs a plain `def` dependency in a worker thread on every request.
async def handlers(request: Request) -> BillingHandlers:
    billing: BillingHandlers = request.app.state.handlers
    return billing


async def queries(request: Request) -> InvoiceQueries:
    return InvoiceQueries(request.app.state.runtime.pool)


Handlers = Annotated[BillingHandlers, Depends(handlers)]
Queries = Annotated[InvoiceQueries, Depends(queries)]
# Who does what: the cashier handles money; the desk (coordinators) takes receipt requests and retries a
# declined online charge; auditors read.
Cashier = Annotated[Actor, Depends(allow("cashier"))]
Desk = Annotated[Actor, Depends(allow("cashier", "coordinator"))]
Reader = Annotated[Actor, Depends(allow("cashier", "coordinator", "auditor"))]
Accounts = Annotated[Actor, Depends(allow("cashier", "auditor"))]


async def _result(invoice_id: UUID, recorded: list[RecordedEvent], q: InvoiceQueries) -> CommandResult:
    view = await q.get(invoice_id)
    assert view is not None
    return CommandResult(invoice_id=invoice_id, status=view["status"], events=[event.name for event in recorded],
                         invoice=view)


@router.post("/invoices/{invoice_id}/payments", status_code=201, response_model=CommandResult)
async def capture_payment(invoice_id: UUID, body: PaymentIn, actor: Cashier, h: Handlers,
                          q: Queries) -> CommandResult:
    """The cashier records the fee paid at the counter (in person, on the consultation day)."""
    recorded = await h.capture_payment(invoice_id, PaymentMethod(body.method), body.amount, actor)
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/charge-retries", status_code=202, response_model=CommandResult)
async def retry_charge(invoice_id: UUID, actor: Desk, h: Handlers, q: Queries) -> CommandResult:
    """Charge the online fee again after a failure; the charge itself happens in the background."""
    recorded = await h.retry_charge(invoice_id, actor)
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/refunds", status_code=201, response_model=CommandResult)
async def issue_refund(invoice_id: UUID, body: RefundIn, actor: Cashier, h: Handlers,
                       q: Queries) -> CommandResult:
    recorded = await h.issue_refund(invoice_id, body.amount, body.reason, actor)
    return await _result(invoice_id, recorded, q)


@router.post("/invoices/{invoice_id}/receipt", status_code=201, response_model=CommandResult)
async def issue_receipt(invoice_id: UUID, actor: Desk, h: Handlers, q: Queries) -> CommandResult:
    """Issue the receipt for the payment (once; the invoice shows its number afterwards)."""
    recorded = await h.issue_receipt(invoice_id, actor)
    return await _result(invoice_id, recorded, q)


async def _payer_name(request: Request, q: InvoiceQueries, actor: Actor, case_id: UUID) -> str | None:
    """The payer's name for one receipt, opened with the case's key asked of intake with the cashier's token
    (see billing.payers); *** once erased."""
    keys: IntakeKeys = request.app.state.intake_keys
    async with q.pool.acquire() as conn:
        sealed = await sealed_payer(conn, case_id)
    # No database connection is held while intake is asked for the key.
    try:
        payer_name = await keys.payer_name(case_id, sealed, request.headers["authorization"])
    except IntakeUnavailable as error:
        raise HTTPException(503, detail=f"{error}; try again", headers={"Retry-After": "2"}) from error
    if payer_name is not None:
        async with q.pool.acquire() as conn:
            await record_access(conn, actor, case_id, "read_payer_name_for_receipt")
    return payer_name


async def _paid_invoice(invoice_id: UUID, h: BillingHandlers, q: InvoiceQueries) -> tuple[ReceiptFacts, UUID]:
    view = await q.get(invoice_id)
    if view is None:
        raise NotFound(f"no invoice {invoice_id}")
    return ReceiptFacts.from_view(view, h.qualified_invoice_number), view["case_id"]


@router.get("/invoices/{invoice_id}/receipt.pdf", tags=["invoices"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The receipt, A4 PDF"}})
async def print_receipt_pdf(invoice_id: UUID, actor: Cashier, request: Request, h: Handlers,
                            q: Queries) -> Response:
    """The issued receipt as a qualified invoice (適格請求書) to hand over or post. The first print is the
    original; every later print of it says 再発行 (reissued)."""
    facts, case_id = await _paid_invoice(invoice_id, h, q)
    receipt_document(facts, None, request.app.state.hospital, reissue=False)  # 404 before intake is asked
    payer_name = await _payer_name(request, q, actor, case_id)
    hospital = request.app.state.hospital
    return await issued_pdf_marking_copies(
        q.pool, "receipt", facts.receipt_reference,
        lambda reissue: render_receipt(facts, payer_name, hospital, reissue), f"receipt-{facts.receipt_number}.pdf")


@router.get("/invoices/{invoice_id}/refund.pdf", tags=["invoices"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The refund note, A4 PDF"}})
async def print_refund_pdf(invoice_id: UUID, actor: Cashier, request: Request, h: Handlers,
                           q: Queries) -> Response:
    """The refund note (返金明細書, a qualified return invoice) for everything refunded on the invoice so far;
    printed again, it says 再発行."""
    facts, case_id = await _paid_invoice(invoice_id, h, q)
    refund_document(facts, None, request.app.state.hospital, reissue=False)  # 404 before intake is asked
    payer_name = await _payer_name(request, q, actor, case_id)
    hospital = request.app.state.hospital
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
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> dict[str, Any]:
    rows = await q.list(case_id, status.value if status else None, limit, offset)
    return {"invoices": rows, "limit": limit, "offset": offset}


@router.get("/takings")
async def takings(_: Accounts, h: Handlers, q: Queries,
                  day: Annotated[date | None, Query(alias="date", description="Asia/Tokyo; today if omitted")] = None,
                  ) -> dict[str, Any]:
    """The day's takings: captured minus refunded, by payment method (Asia/Tokyo business date)."""
    return await q.takings(day or h.today())
