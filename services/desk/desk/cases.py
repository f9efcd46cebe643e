"""The case page: everything the four services know about one case, its timeline, the documents checklist,
and the actions its state allows now, each posted to the service that decides it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from desk import forms
from desk.backends import Answer, Backends
from desk.sessions import StaffSession
from desk.web import (
    Form,
    backends,
    done,
    fingerprint,
    names_of,
    printed,
    problem,
    render,
    staff,
    store,
    today_tokyo,
)
from secondopinion_contracts.codes import (
    CancellationReason,
    CancelledBy,
    DeliveryChannel,
    DocumentKind,
    RefusalReason,
    RescheduleReason,
    WithdrawalReason,
)

router = APIRouter()

CaseStaff = Annotated[StaffSession, Depends(staff("coordinator", "physician"))]
Coordinator = Annotated[StaffSession, Depends(staff("coordinator"))]
Physician = Annotated[StaffSession, Depends(staff("physician"))]

PROPOSABLE = ("awaiting_proposals", "proposed", "cancelled")
OPEN_INTAKE = ("submitted", "awaiting_documents", "screening")
SLOT_DAYS = 30


async def _optional(answer: Answer) -> Any:
    return answer.body if answer.ok else None


async def case_state(b: Backends, session: StaffSession, case_id: UUID) -> dict[str, Any]:
    """What the services hold of the case that changes as events arrive (no personal data: never logged as a
    read), for the page and for its live check."""
    token = session.access_token
    calls = [b.get("scheduling", f"/cases/{case_id}/schedule", token),
             b.get("scheduling", f"/cases/{case_id}/appointment", token),
             b.get("reporting", f"/cases/{case_id}/timeline", token)]
    if session.holds("coordinator"):
        calls.append(b.get("billing", "/invoices", token, case_id=str(case_id)))
    schedule, appointment, timeline, *invoices = await asyncio.gather(*calls)
    return {"schedule": schedule.body if schedule.ok else None,
            "appointment": appointment.body if appointment.ok else None,
            "timeline": timeline.body["events"] if timeline.ok else [],
            "invoices": invoices[0].body["invoices"] if invoices and invoices[0].ok else []}


def live_fingerprint(state: dict[str, Any]) -> str:
    schedule = state["schedule"] or {}
    appointment = state["appointment"] or {}
    return fingerprint(schedule.get("version"), schedule.get("status"), appointment.get("status"),
                       appointment.get("clinics_booking_ref"), len(state["timeline"]),
                       [(i["status"], i["version"]) for i in state["invoices"]])


async def case_page(request: Request, session: StaffSession, case_id: UUID, *, problems: dict[str, Any] | None = None,
                    status_code: int = 200) -> Response:
    b = backends(request)
    token = session.access_token
    case_answer, state, report = await asyncio.gather(
        b.get("intake", f"/cases/{case_id}", token), case_state(b, session, case_id),
        b.get("reporting", f"/cases/{case_id}/report", token))
    if not case_answer.ok:
        return render(request, "error.html", session, status_code=case_answer.status,
                      problem=problem(case_answer, session.lang))
    case = case_answer.body
    schedule, appointment = state["schedule"], state["appointment"]
    slots: list[dict[str, Any]] = []
    if session.holds("coordinator") and schedule and (
            schedule["status"] in PROPOSABLE or (appointment and appointment["status"] == "booked")):
        first = today_tokyo(request)
        answer = await b.get("scheduling", f"/departments/{case['department']}/slots", token, status="open",
                             **{"from": first.isoformat(), "to": (first + timedelta(days=SLOT_DAYS)).isoformat()})
        slots = answer.body["slots"] if answer.ok else []
    # Accepted at intake, not yet known to scheduling: the event is on its way.
    pending = case["status"] == "accepted" and schedule is None
    body = report.body if report.ok else None
    names = await names_of(request, [(appointment or {}).get("physician_id"), (body or {}).get("physician_id"),
                                     *(slot["physician_id"] for slot in slots),
                                     *(event["actor"]["id"] for event in state["timeline"])])
    flash = await store(request).take_flash(session)
    return render(request, "case.html", session, status_code=status_code, case=case, schedule=schedule,
                  appointment=appointment, invoices=state["invoices"], timeline=state["timeline"],
                  report=body, slots=slots, pending=pending, flash=flash, names=names,
                  problems=problems or {}, live=live_fingerprint(state), live_url=f"/cases/{case_id}/live",
                  open_intake=OPEN_INTAKE,
                  proposable=PROPOSABLE, document_kinds=[k.value for k in DocumentKind],
                  withdrawal_reasons=[r.value for r in WithdrawalReason],
                  cancellation_reasons=[r.value for r in CancellationReason
                                        if r is not CancellationReason.CASE_WITHDRAWN],
                  cancelled_by=[c.value for c in CancelledBy],
                  reschedule_reasons=[r.value for r in RescheduleReason],
                  refusal_reasons=[r.value for r in RefusalReason],
                  delivery_channels=[c.value for c in DeliveryChannel],
                  today=today_tokyo(request))


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def show_case(request: Request, case_id: UUID, session: CaseStaff) -> Response:
    return await case_page(request, session, case_id)


@router.get("/cases/{case_id}/live")
async def case_live(request: Request, case_id: UUID, session: CaseStaff) -> JSONResponse:
    """The page's live check: a fingerprint that changes when an event changes what the page shows."""
    state = await case_state(backends(request), session, case_id)
    return JSONResponse({"fingerprint": live_fingerprint(state)}, headers={"Cache-Control": "no-store"})


async def _act(request: Request, session: StaffSession, case_id: UUID, action: str, answer: Answer,
               anchor: str) -> Response:
    if answer.ok:
        return await done(request, session, f"/cases/{case_id}#{anchor}", action=action)
    return await case_page(request, session, case_id, problems={action: problem(answer, session.lang)},
                           status_code=answer.status if answer.status in (403, 404, 409, 410, 422) else 409)


def _invalid(error: forms.FieldError, session: StaffSession) -> dict[str, Any]:
    return {"message": error.message(session.lang), "reasons": [], "fields": {error.field: error.message(session.lang)},
            "code": "invalid"}


async def _form_problem(request: Request, session: StaffSession, case_id: UUID, action: str,
                        error: forms.FieldError) -> Response:
    return await case_page(request, session, case_id, problems={action: _invalid(error, session)}, status_code=422)


@router.post("/cases/{case_id}/documents")
async def record_document(request: Request, case_id: UUID, session: Coordinator, form: Form) -> Response:
    try:
        kind = forms.choice("kind", str(form.get("kind", "")), [k.value for k in DocumentKind])
        received_on = forms.a_date("received_on", str(form.get("received_on", "")))
    except forms.FieldError as error:
        return await _form_problem(request, session, case_id, "documents", error)
    answer = await backends(request).post("intake", f"/cases/{case_id}/documents", session.access_token,
                                          {"kind": kind, "received_on": received_on.isoformat()})
    return await _act(request, session, case_id, "documents", answer, "documents")


@router.post("/cases/{case_id}/withdrawal")
async def withdraw(request: Request, case_id: UUID, session: Coordinator, form: Form) -> Response:
    try:
        reason = forms.choice("reason", str(form.get("reason", "")), [r.value for r in WithdrawalReason])
    except forms.FieldError as error:
        return await _form_problem(request, session, case_id, "withdrawal", error)
    answer = await backends(request).post("intake", f"/cases/{case_id}/withdrawal", session.access_token,
                                          {"reason": reason})
    return await _act(request, session, case_id, "withdrawal", answer, "status")


@router.post("/cases/{case_id}/screening")
async def screen(request: Request, case_id: UUID, session: Physician, form: Form) -> Response:
    decision = str(form.get("decision", ""))
    if decision not in ("accept", "decline"):
        return await _form_problem(request, session, case_id, "screening",
                                   forms.FieldError("decision", "受諾かお断りを選んでください", "Accept or decline"))
    known = [reason.value for reason in RefusalReason]
    reasons = [r for r in form.getlist("reasons") if r in known] if decision == "decline" else []
    answer = await backends(request).post("intake", f"/cases/{case_id}/screening", session.access_token,
                                          {"decision": decision, "reasons": reasons, "physician": session.subject})
    return await _act(request, session, case_id, "screening", answer, "status")


@router.post("/cases/{case_id}/proposals")
async def propose(request: Request, case_id: UUID, session: Coordinator, form: Form) -> Response:
    slot_ids = [str(s) for s in form.getlist("slot_ids")]
    if not 1 <= len(slot_ids) <= 3:
        return await _form_problem(request, session, case_id, "proposals", forms.FieldError(
            "slot_ids", "候補日を1〜3件選んでください", "Pick one to three dates"))
    answer = await backends(request).post("scheduling", f"/cases/{case_id}/proposals", session.access_token,
                                          {"slot_ids": slot_ids})
    return await _act(request, session, case_id, "proposals", answer, "schedule")


@router.post("/cases/{case_id}/appointment")
async def record_choice(request: Request, case_id: UUID, session: Coordinator, form: Form) -> Response:
    slot_id = str(form.get("slot_id", ""))
    if not slot_id:
        return await _form_problem(request, session, case_id, "choice", forms.FieldError(
            "slot_id", "患者が選んだ日を選んでください", "Pick the date the patient chose"))
    answer = await backends(request).post("scheduling", f"/cases/{case_id}/appointment", session.access_token,
                                          {"slot_id": slot_id})
    return await _act(request, session, case_id, "choice", answer, "schedule")


async def _appointment_of(request: Request, session: StaffSession, case_id: UUID) -> str | None:
    answer = await backends(request).get("scheduling", f"/cases/{case_id}/appointment", session.access_token)
    return str(answer.body["appointment_id"]) if answer.ok else None


@router.post("/cases/{case_id}/appointment/{step}")
async def appointment_step(request: Request, case_id: UUID, step: str, session: CaseStaff, form: Form) -> Response:
    """CLINICS reference, reschedule, cancel, no-show, completed: each is scheduling's appointment command."""
    body: dict[str, Any] | None = None
    try:
        if step == "online-booking":
            ref = forms.required("clinics_booking_ref", str(form.get("clinics_booking_ref", "")))
            body = {"clinics_booking_ref": ref}
        elif step == "reschedule":
            body = {"slot_id": forms.required("slot_id", str(form.get("slot_id", ""))),
                    "reason": forms.choice("reason", str(form.get("reason", "")), [r.value for r in RescheduleReason])}
        elif step == "cancel":
            body = {"reason_code": forms.choice("reason_code", str(form.get("reason_code", "")),
                                                [r.value for r in CancellationReason]),
                    "by": forms.choice("by", str(form.get("by", "")), [c.value for c in CancelledBy])}
        elif step not in ("no-show", "complete", "slip"):
            return render(request, "error.html", session, status_code=404, problem={"message": "not found"})
    except forms.FieldError as error:
        return await _form_problem(request, session, case_id, step, error)
    if step in ("online-booking", "reschedule", "cancel", "slip") and not session.holds("coordinator"):
        return render(request, "error.html", session, status_code=403,
                      problem={"message": problem(Answer(status=403, code="forbidden"), session.lang)["message"]})
    appointment_id = await _appointment_of(request, session, case_id)
    if appointment_id is None:
        return await case_page(request, session, case_id, status_code=409,
                               problems={step: problem(Answer(status=404, code="not_found"), session.lang)})
    answer = await backends(request).post("scheduling", f"/appointments/{appointment_id}/{step}",
                                          session.access_token, body)
    return await _act(request, session, case_id, step, answer, "schedule")


@router.get("/cases/{case_id}/slip.pdf")
async def slip_pdf(request: Request, case_id: UUID, session: Coordinator) -> Response:
    """The appointment slip as scheduling prints it (in person, once booked)."""
    appointment_id = await _appointment_of(request, session, case_id)
    if appointment_id is None:
        return render(request, "error.html", session, status_code=404,
                      problem=problem(Answer(status=404, code="not_found"), session.lang))
    return await printed(request, session, "scheduling", f"/appointments/{appointment_id}/slip.pdf")


@router.get("/cases/{case_id}/report.pdf")
async def report_pdf(request: Request, case_id: UUID, session: CaseStaff) -> Response:
    """The report letter as reporting prints it (once finalized)."""
    return await printed(request, session, "reporting", f"/cases/{case_id}/report.pdf")


@router.post("/cases/{case_id}/report/delivery")
async def record_delivery(request: Request, case_id: UUID, session: Coordinator, form: Form) -> Response:
    try:
        channel = forms.choice("channel", str(form.get("channel", "")), [c.value for c in DeliveryChannel])
    except forms.FieldError as error:
        return await _form_problem(request, session, case_id, "delivery", error)
    answer = await backends(request).post("reporting", f"/cases/{case_id}/report/delivery", session.access_token,
                                          {"channel": channel})
    return await _act(request, session, case_id, "delivery", answer, "report")


@router.post("/cases/{case_id}/invoices/{invoice_id}/charge-retry")
async def retry_charge(request: Request, case_id: UUID, invoice_id: UUID, session: Coordinator, _: Form) -> Response:
    answer = await backends(request).post("billing", f"/invoices/{invoice_id}/charge-retries", session.access_token)
    return await _act(request, session, case_id, "charge", answer, "billing")
