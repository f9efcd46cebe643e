"""The privacy officers' pages: the erasures waiting for a second officer's approval, opening a case by its number,
and a case's erasure page (its number, status and dates, no personal data) where one officer requests the erasure
and another approves it, each after a confirmation step. Intake decides (the retention period, the second officer,
an erasure done already); the desk shows its refusal beside the action."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from desk import catalogue, forms
from desk.backends import Answer
from desk.sessions import StaffSession
from desk.web import Form, backends, done, field_problem, names_of, pages, problem, render, staff, store

router = APIRouter()
Officer = Annotated[StaffSession, Depends(staff("privacy_officer"))]
PAGE_SIZE = 20
# The two steps, each posted to intake once confirmed: the action's name -> intake's path under the case.
STEPS = {"request": "/personal-data/erasure", "approval": "/personal-data/erasure/approval"}


async def _home(request: Request, session: StaffSession, offset: int, *, value: str = "",
                problem_: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    answer = await backends(request).get("intake", "/personal-data/erasure-requests", session.access_token,
                                         limit=PAGE_SIZE, offset=offset)
    rows = answer.body["requests"] if answer.ok else []
    names = await names_of(request, (row["requested_by"] for row in rows))
    return render(request, "privacy.html", session, status_code=status_code, rows=rows,
                  pages=pages(request, "offset", str(answer.body["next_offset"])
                              if answer.ok and answer.body["next_offset"] is not None else None, path="/privacy"),
                  value=value, problem=problem_,
                  unavailable=None if answer.ok else problem(answer, session.lang), names=names,
                  flash=await store(request).take_flash(session))


@router.get("/privacy", response_class=HTMLResponse)
async def privacy_home(request: Request, session: Officer,
                       offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> Response:
    return await _home(request, session, offset)


@router.post("/privacy/find", response_class=HTMLResponse)
async def find_case(request: Request, session: Officer, form: Form) -> Response:
    """A case by its number (or id), posted: the page it leads to names the case by its id only."""
    typed = forms.text(str(form.get("case_number", "")))
    try:
        return RedirectResponse(f"/privacy/cases/{UUID(typed)}", status_code=303)
    except ValueError:
        pass
    message = catalogue.label("erasure_bad_number", session.lang)
    if not typed:
        return await _home(request, session, 0, problem_=field_problem("case_number", message), status_code=422)
    answer = await backends(request).get("intake", "/cases/search", session.access_token, case_number=typed)
    if answer.status == 422:
        return await _home(request, session, 0, value=typed, problem_=field_problem("case_number", message),
                           status_code=422)
    found = answer.body["cases"] if answer.ok else []
    if not answer.ok or not found:
        refused = answer if not answer.ok else Answer(status=404, code="not_found", service="intake")
        return await _home(request, session, 0, value=typed, problem_=problem(refused, session.lang),
                           status_code=refused.status)
    return RedirectResponse(f"/privacy/cases/{found[0]['case_id']}", status_code=303)


async def _case_page(request: Request, session: StaffSession, case_id: UUID, *, confirm: str | None = None,
                     problems: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    answer = await backends(request).get("intake", f"/cases/{case_id}/personal-data/erasure", session.access_token)
    if not answer.ok:
        return render(request, "error.html", session, status_code=answer.status,
                      problem=problem(answer, session.lang))
    erasure = answer.body
    names = await names_of(request, [(erasure["request"] or {}).get("requested_by")])
    return render(request, "privacy_case.html", session, status_code=status_code, erasure=erasure,
                  confirm=confirm, problems=problems or {}, names=names,
                  flash=await store(request).take_flash(session))


@router.get("/privacy/cases/{case_id}", response_class=HTMLResponse)
async def erasure_page(request: Request, case_id: UUID, session: Officer) -> Response:
    return await _case_page(request, session, case_id)


@router.post("/privacy/cases/{case_id}/erasure/{step}", response_class=HTMLResponse)
async def erasure_step(request: Request, case_id: UUID, step: str, session: Officer, form: Form) -> Response:
    """`request` or `approval`: first the confirmation (what cannot be undone, said plainly), then, confirmed,
    intake's command; its refusal is shown beside the action."""
    if step not in STEPS:
        return render(request, "error.html", session, status_code=404,
                      problem=problem(Answer(status=404, code="not_found"), session.lang))
    if form.get("confirmed") != "yes":
        return await _case_page(request, session, case_id, confirm=step)
    answer = await backends(request).post("intake", f"/cases/{case_id}{STEPS[step]}", session.access_token)
    if not answer.ok:
        status = answer.status if answer.status in (403, 404, 409, 410, 422) else 409
        return await _case_page(request, session, case_id, problems={step: problem(answer, session.lang)},
                                status_code=status)
    outcome = "erasure_requested_msg" if step == "request" else "erasure_approved_msg"
    return await done(request, session, f"/privacy/cases/{case_id}", message_key=outcome)
