"""The cashier's pages: today's consultations with the patients' names and their invoices, finding the person at
the counter by name or case number, taking the fee, receipts, refunds, failed card charges and their retry, and the
day's takings with the transactions for closing the till.

The names come from intake's `GET /cases/names-for-counter` (accepted cases only, each read in intake's access
log); the desk keeps none of them."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from desk import forms
from desk.backends import Answer, Backends
from desk.sessions import StaffSession
from desk.web import (
    Form,
    backends,
    done,
    field_problem,
    fingerprint,
    pages,
    printed,
    problem,
    render,
    staff,
    store,
    today_tokyo,
)
from secondopinion_contracts.codes import RefundReason

router = APIRouter()
Cashier = Annotated[StaffSession, Depends(staff("cashier"))]
NAMES_PER_CALL = 100  # intake's most case ids in one names-for-counter call
FOUND_AT_MOST = 20
TRANSACTIONS_PAGE = 50


async def _names(b: Backends, session: StaffSession, case_ids: list[str]) -> tuple[dict[str, Any], Answer | None]:
    """The names intake gives the cashier for these cases (accepted ones only), by case id; and intake's refusal,
    if it refused."""
    unique = list(dict.fromkeys(case_ids))
    answers = await asyncio.gather(*(
        b.get("intake", "/cases/names-for-counter", session.access_token, case_id=unique[at:at + NAMES_PER_CALL])
        for at in range(0, len(unique), NAMES_PER_CALL)))
    named = {str(case["case_id"]): case for answer in answers if answer.ok for case in answer.body["cases"]}
    return named, next((answer for answer in answers if not answer.ok), None)


async def _invoices_of(b: Backends, session: StaffSession, case_ids: list[str]) -> list[list[dict[str, Any]]]:
    answers = await asyncio.gather(*(b.get("billing", "/invoices", session.access_token, case_id=case_id)
                                     for case_id in case_ids))
    return [answer.body["invoices"] if answer.ok else [] for answer in answers]


async def _day(b: Backends, session: StaffSession, day: date) -> list[dict[str, Any]]:
    answer = await b.get("scheduling", "/appointments", session.access_token, date=day.isoformat())
    appointments = answer.body["appointments"] if answer.ok else []
    invoices = await _invoices_of(b, session, [str(a["case_id"]) for a in appointments])
    rows = []
    for appointment, found in zip(appointments, invoices, strict=True):
        mine = [i for i in found if str(i["appointment_id"]) == str(appointment["appointment_id"])]
        rows.append({**appointment, "invoice": mine[0] if mine else None})
    return rows


async def _counter_page(request: Request, session: StaffSession, *, typed: str = "",
                        found: list[dict[str, Any]] | None = None, find_problem: dict[str, Any] | None = None,
                        status_code: int = 200) -> Response:
    b = backends(request)
    rows = await _day(b, session, today_tokyo(request))
    named, refused = await _names(b, session, [str(row["case_id"]) for row in rows])
    return render(request, "counter.html", session, status_code=status_code, rows=rows, named=named,
                  names_problem=problem(refused, session.lang) if refused else None, typed=typed, found=found,
                  find_problem=find_problem, flash=await store(request).take_flash(session),
                  live=_day_fingerprint(rows), live_url="/counter/live")


@router.get("/counter", response_class=HTMLResponse)
async def counter(request: Request, session: Cashier) -> Response:
    return await _counter_page(request, session)


@router.post("/counter/find", response_class=HTMLResponse)
async def find_at_counter(request: Request, session: Cashier, form: Form) -> Response:
    """The person at the counter, by the patient's name (kanji or kana) or the case number. Posted, so that a name
    never appears in a URL; intake logs the search and each case whose names it gives."""
    typed = forms.text(str(form.get("who", "")))[:100]
    if not typed:
        message = forms.FieldError("who", "お名前か案件番号を入力してください",
                                   "Type the patient's name or the case number").message(session.lang)
        return await _counter_page(request, session, find_problem=field_problem("who", message), status_code=422)
    # A name has no digits; anything with a digit is taken for a case number (intake reads SO-2026-123 in any width).
    key = "case_number" if any(c.isdigit() for c in typed) else "name"
    b = backends(request)
    answer = await b.get("intake", "/cases/search", session.access_token, limit=FOUND_AT_MOST, **{key: typed})
    if not answer.ok:
        refused = problem(answer, session.lang)
        refused["fields"] = {"who": refused["message"]} if answer.status == 422 else refused["fields"]
        return await _counter_page(request, session, typed=typed, find_problem=refused, status_code=answer.status)
    case_ids = [str(case["case_id"]) for case in answer.body["cases"]]
    named, names_refused = await _names(b, session, case_ids)
    if names_refused is not None:
        return await _counter_page(request, session, typed=typed, find_problem=problem(names_refused, session.lang),
                                   status_code=names_refused.status)
    accepted = [case_id for case_id in case_ids if case_id in named]  # intake names accepted cases only
    invoices = await _invoices_of(b, session, accepted)
    found = [{**named[case_id], "invoices": of_case} for case_id, of_case in zip(accepted, invoices, strict=True)]
    return await _counter_page(request, session, typed=typed, found=found)


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
    named, _ = await _names(b, session, [str(invoice["case_id"])])
    return render(request, "invoice.html", session, status_code=status_code, invoice=invoice, receipt=receipt,
                  whose=named.get(str(invoice["case_id"])),
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


FAILED_PAGE = 20


@router.get("/failed-charges", response_class=HTMLResponse)
async def failed_charges(request: Request, session: Cashier,
                         offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    """The online card charges that failed and are not paid since, the latest first, paged by billing; with the
    patients' names, so that the desk can call them before retrying."""
    b = backends(request)
    answer = await b.get("billing", "/invoices", session.access_token, status="issued", charge_status="failed",
                         limit=FAILED_PAGE, offset=offset)
    invoices = answer.body["invoices"] if answer.ok else []
    named, _ = await _names(b, session, [str(invoice["case_id"]) for invoice in invoices])
    following = answer.body["next_offset"] if answer.ok else None
    return render(request, "failed_charges.html", session, invoices=invoices, named=named,
                  pages=pages(request, "offset", None if following is None else str(following)),
                  problem=None if answer.ok else problem(answer, session.lang))


@router.get("/takings", response_class=HTMLResponse)
async def takings(request: Request, session: Cashier,
                  typed_day: Annotated[str | None, Query(alias="date", max_length=40)] = None,
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    """A day's takings by payment method (today unless asked, as typed: 2026/12/02) and its transactions
    (billing's list, paged) to close the till by."""
    today = today_tokyo(request)
    try:
        day = forms.a_date("date", typed_day) if typed_day else today
    except forms.FieldError as error:
        return render(request, "takings.html", session, status_code=422, day=None, typed_day=typed_day, totals=None,
                      transactions=[], pages={}, problem=field_problem("date", error.message(session.lang)))
    b = backends(request)
    totals, listed = await asyncio.gather(
        b.get("billing", "/takings", session.access_token, date=day.isoformat()),
        b.get("billing", "/transactions", session.access_token, date=day.isoformat(), limit=TRANSACTIONS_PAGE,
              offset=offset))
    following = listed.body["next_offset"] if listed.ok else None
    refused = next((answer for answer in (totals, listed) if not answer.ok), None)
    return render(request, "takings.html", session, day=day, typed_day=day.strftime("%Y/%m/%d"),
                  is_today=day == today, totals=totals.body if totals.ok else None,
                  transactions=listed.body["transactions"] if listed.ok else [],
                  pages=pages(request, "offset", None if following is None else str(following)),
                  problem=problem(refused, session.lang) if refused else None)
