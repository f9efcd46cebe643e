"""The physician's pages: the screening queue of a department, their consultations, and the report editor."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from desk import forms
from desk.coordinator import AGES, Cursor, Department, MinAge, _details, intake_page, list_filters
from desk.sessions import StaffSession
from desk.web import Form, backends, done, names_of, pages, problem, render, staff, store, today_tokyo

router = APIRouter()
Physician = Annotated[StaffSession, Depends(staff("physician"))]
SCREENING_PAGE_SIZE = 20


@router.get("/screening", response_class=HTMLResponse)
async def screening_queue(request: Request, session: Physician, department: Department = None, min_age: MinAge = 0,
                          cursor: Cursor = None) -> Response:
    """The cases waiting for screening, the longest waiting first, narrowed and paged by intake."""
    b, today = backends(request), today_tokyo(request)
    filters = list_filters(today, department, min_age)
    answer = await intake_page(b, session.access_token, cursor, limit=SCREENING_PAGE_SIZE, status="screening",
                               sort="oldest", **filters)
    shown = await _details(b, session.access_token, answer.body["cases"] if answer.ok else [], today)
    return render(request, "screening.html", session, rows=shown, department=filters["department"],
                  min_age=min_age, ages=AGES,
                  pages=pages(request, "cursor", answer.body.get("next_cursor") if answer.ok else None),
                  problem=None if answer.ok else problem(answer, session.lang))


CONSULTATION_DAYS = 7  # a page of the physician's consultations: a week from its first day
CONSULTATION_RANGE = timedelta(days=3650)  # how far from today the pages go


@router.get("/consultations", response_class=HTMLResponse)
async def consultations(request: Request, session: Physician,
                        first: Annotated[date | None, Query(alias="from")] = None) -> Response:
    """The signed-in physician's consultations, a week to a page from today (or `from`), paged by week both
    ways: scheduling lists each day's appointments of this physician."""
    b = backends(request)
    today = today_tokyo(request)
    # A week asked for far from today (an edited address) is today's: no date arithmetic runs off the calendar.
    start = first if first and abs(first - today) <= CONSULTATION_RANGE else today
    days = [start + timedelta(days=n) for n in range(CONSULTATION_DAYS)]
    answers = await asyncio.gather(*(b.get("scheduling", "/appointments", session.access_token, date=d.isoformat(),
                                           physician=session.subject) for d in days))
    mine = [a for answer in answers if answer.ok for a in answer.body["appointments"]]
    refused = next((answer for answer in answers if not answer.ok), None)
    week = timedelta(days=CONSULTATION_DAYS)
    links = {"first": "/consultations" if start != today else None, "first_label": "from_today",
             "previous": f"/consultations?from={(start - week).isoformat()}",
             "next": f"/consultations?from={(start + week).isoformat()}"}
    return render(request, "consultations.html", session, appointments=mine, days=(days[0], days[-1]), pages=links,
                  problem=problem(refused, session.lang) if refused else None)


async def _editor(request: Request, session: StaffSession, case_id: UUID, *, problem_: dict[str, Any] | None = None,
                  summary: str | None = None, status_code: int = 200) -> Response:
    report = await backends(request).get("reporting", f"/cases/{case_id}/report", session.access_token)
    flash = await store(request).take_flash(session)
    body = report.body if report.ok else None
    names = await names_of(request, [(body or {}).get("physician_id")])
    return render(request, "report.html", session, status_code=status_code, case_id=case_id, report=body, names=names,
                  summary=summary if summary is not None else (body or {}).get("summary", ""), problem=problem_,
                  flash=flash)


@router.get("/cases/{case_id}/report", response_class=HTMLResponse)
async def report_editor(request: Request, case_id: UUID, session: Physician) -> Response:
    return await _editor(request, session, case_id)


@router.post("/cases/{case_id}/report", response_class=HTMLResponse)
async def save_draft(request: Request, case_id: UUID, session: Physician, form: Form) -> Response:
    summary = str(form.get("summary", "")).strip()
    if not summary:
        error = forms.FieldError("summary", "所見を入力してください", "Write the opinion")
        return await _editor(request, session, case_id, summary=summary, status_code=422, problem_={
            "message": error.message(session.lang), "fields": {"summary": error.message(session.lang)}})
    answer = await backends(request).post("reporting", f"/cases/{case_id}/report", session.access_token,
                                          {"physician": session.subject, "summary": summary})
    if not answer.ok:
        return await _editor(request, session, case_id, summary=summary, status_code=answer.status,
                             problem_=problem(answer, session.lang))
    return await done(request, session, f"/cases/{case_id}/report", message_key="report_saved")


@router.post("/cases/{case_id}/report/finalize", response_class=HTMLResponse)
async def finalize(request: Request, case_id: UUID, session: Physician, _: Form) -> Response:
    answer = await backends(request).post("reporting", f"/cases/{case_id}/report/finalize", session.access_token)
    if not answer.ok:
        return await _editor(request, session, case_id, status_code=answer.status,
                             problem_=problem(answer, session.lang))
    return await done(request, session, f"/cases/{case_id}/report", message_key="report_finalized_msg")
