"""The cashier's pages: today's consultations and their invoices, taking the fee, receipts, refunds, failed
card charges and their retry, and the day's takings with the transactions for closing the till."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from desk import forms
from desk.backends import Backends
from desk.sessions import StaffSession
from desk.web import Form, backends, done, fingerprint, printed, problem, render, staff, store, today_tokyo, tokyo
from secondopinion_contracts.codes import RefundReason

router = APIRouter()
Cashier = Annotated[StaffSession, Depends(staff("cashier"))]
MAX_INVOICES = 500


async def _day(b: Backends, session: StaffSession, day: date) -> list[dict[str, Any]]:
    token = session.access_token
    answer = await b.get("scheduling", "/appointments", token, date=day.isoformat())
    appointments = answer.body["appointments"] if answer.ok else []
    invoices = await asyncio.gather(*(b.get("billing", "/invoices", token, case_id=str(a["case_id"]))
                                      for a in appointments))
    rows = []
    for appointment, found in zip(appointments, invoices, strict=True):
        mine = [i for i in (found.body["invoices"] if found.ok else [])
                if str(i["appointment_id"]) == str(appointment["appointment_id"])]
        rows.append({**appointment, "invoice": mine[0] if mine else None})
    return rows


@router.get("/counter", response_class=HTMLResponse)
async def counter(request: Request, session: Cashier) -> Response:
    rows = await _day(backends(request), session, today_tokyo(request))
    return render(request, "counter.html", session, rows=rows, flash=await store(request).take_flash(session),
                  live=_day_fingerprint(rows), live_url="/counter/live")


def _day_fingerprint(rows: list[dict[str, Any]]) -> str:
    return fingerprint([(r["appointment_id"], r["status"], (r["invoice"] or {}).get("version")) for r in rows])


@router.get("/counter/live")
async def counter_live(request: Request, session: Cashier) -> JSONResponse:
    rows = await _day(backends(request), session, today_tokyo(request))
    return JSONResponse({"fingerprint": _day_fingerprint(rows)}, headers={"Cache-Control": "no-store"})


async def _invoice_page(request: Request, session: StaffSession, invoice_id: UUID, *,
                        problems: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    b = backends(request)
    answer = await b.get("billing", f"/invoices/{invoice_id}", session.access_token)
    if not answer.ok:
        return render(request, "error.html", session, status_code=answer.status, problem=problem(answer, session.lang))
    invoice = answer.body
    receipt = None
    if invoice.get("receipt"):
        printed = await b.get("billing", f"/invoices/{invoice_id}/receipt", session.access_token)
        receipt = printed.body if printed.ok else None
    return render(request, "invoice.html", session, status_code=status_code, invoice=invoice, receipt=receipt,
                  problems=problems or {}, flash=await store(request).take_flash(session),
                  refund_reasons=[r.value for r in RefundReason], live=fingerprint(invoice["version"]),
                  live_url=f"/invoices/{invoice_id}/live")


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice_page(request: Request, invoice_id: UUID, session: Cashier) -> Response:
    return await _invoice_page(request, session, invoice_id)


@router.get("/invoices/{invoice_id}/live")
async def invoice_live(request: Request, invoice_id: UUID, session: Cashier) -> JSONResponse:
    answer = await backends(request).get("billing", f"/invoices/{invoice_id}", session.access_token)
    return JSONResponse({"fingerprint": fingerprint(answer.body["version"] if answer.ok else None)},
                        headers={"Cache-Control": "no-store"})


async def _after(request: Request, session: StaffSession, invoice_id: UUID, action: str, answer: Any,
                 message_key: str) -> Response:
    if answer.ok:
        return await done(request, session, f"/invoices/{invoice_id}", message_key=message_key)
    return await _invoice_page(request, session, invoice_id, problems={action: problem(answer, session.lang)},
                               status_code=answer.status if answer.status in (403, 404, 409, 422) else 409)


def _invalid(session: StaffSession, error: forms.FieldError) -> dict[str, Any]:
    return {"message": error.message(session.lang), "reasons": [],
            "fields": {error.field: error.message(session.lang)}, "code": "invalid"}


@router.get("/invoices/{invoice_id}/receipt.pdf")
async def receipt_pdf(request: Request, invoice_id: UUID, session: Cashier) -> Response:
    """The issued receipt as billing prints it (a second print says 再発行)."""
    return await printed(request, session, "billing", f"/invoices/{invoice_id}/receipt.pdf")


@router.get("/invoices/{invoice_id}/refund.pdf")
async def refund_pdf(request: Request, invoice_id: UUID, session: Cashier) -> Response:
    """The refund note as billing prints it, for everything refunded so far."""
    return await printed(request, session, "billing", f"/invoices/{invoice_id}/refund.pdf")


@router.post("/invoices/{invoice_id}/payment", response_class=HTMLResponse)
async def take_fee(request: Request, invoice_id: UUID, session: Cashier, form: Form) -> Response:
    try:
        method = forms.choice("method", str(form.get("method", "")), ["cash", "card"])
        amount = forms.yen("amount", str(form.get("amount", "")))
    except forms.FieldError as error:
        return await _invoice_page(request, session, invoice_id, problems={"payment": _invalid(session, error)},
                                   status_code=422)
    # The amount as entered: billing checks it against the invoice (the desk does not).
    answer = await backends(request).post("billing", f"/invoices/{invoice_id}/payments", session.access_token,
                                          {"method": method, "amount": amount})
    return await _after(request, session, invoice_id, "payment", answer, "payment_taken")


@router.post("/invoices/{invoice_id}/receipt", response_class=HTMLResponse)
async def issue_receipt(request: Request, invoice_id: UUID, session: Cashier, _: Form) -> Response:
    answer = await backends(request).post("billing", f"/invoices/{invoice_id}/receipt", session.access_token)
    return await _after(request, session, invoice_id, "receipt", answer, "receipt_issued")


@router.post("/invoices/{invoice_id}/refund", response_class=HTMLResponse)
async def refund(request: Request, invoice_id: UUID, session: Cashier, form: Form) -> Response:
    try:
        amount = forms.yen("refund_amount", str(form.get("refund_amount", "")))
        reason = forms.choice("refund_reason", str(form.get("refund_reason", "")), [r.value for r in RefundReason])
    except forms.FieldError as error:
        return await _invoice_page(request, session, invoice_id, problems={"refund": _invalid(session, error)},
                                   status_code=422)
    answer = await backends(request).post("billing", f"/invoices/{invoice_id}/refunds", session.access_token,
                                          {"amount": amount, "reason": reason})
    return await _after(request, session, invoice_id, "refund", answer, "refund_issued")


@router.post("/invoices/{invoice_id}/charge-retry", response_class=HTMLResponse)
async def retry_charge(request: Request, invoice_id: UUID, session: Cashier, _: Form) -> Response:
    answer = await backends(request).post("billing", f"/invoices/{invoice_id}/charge-retries", session.access_token)
    return await _after(request, session, invoice_id, "charge", answer, "charge_retried")


async def _all_invoices(b: Backends, session: StaffSession, status: str | None = None) -> list[dict[str, Any]]:
    answer = await b.get("billing", "/invoices", session.access_token, status=status, limit=MAX_INVOICES)
    return answer.body["invoices"] if answer.ok else []


@router.get("/failed-charges", response_class=HTMLResponse)
async def failed_charges(request: Request, session: Cashier) -> Response:
    invoices = await _all_invoices(backends(request), session, "issued")
    failed = [i for i in invoices if (i.get("online_charge") or {}).get("status") == "failed"]
    return render(request, "failed_charges.html", session, invoices=failed)


@router.get("/takings", response_class=HTMLResponse)
async def takings(request: Request, session: Cashier,
                  day: Annotated[date | None, Query(alias="date")] = None) -> Response:
    b = backends(request)
    day = day or today_tokyo(request)
    totals, invoices = await asyncio.gather(b.get("billing", "/takings", session.access_token, date=day.isoformat()),
                                            _all_invoices(b, session))
    # The day's transactions: the payments captured that day (billing has no list by day yet).
    captured = [i for i in invoices if i.get("payment") and i["payment"].get("captured_at")
                and tokyo(i["payment"]["captured_at"], "%Y-%m-%d") == day.isoformat()]
    return render(request, "takings.html", session, day=day, totals=totals.body if totals.ok else None,
                  transactions=captured, problem=None if totals.ok else problem(totals, session.lang))
