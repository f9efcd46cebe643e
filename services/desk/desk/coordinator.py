"""The coordinator's pages: the work queue, a new case from a phone call, finding a case, the case list,
opening slots with the business-day calendar, and the case board."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from desk import catalogue, departments, forms
from desk.backends import Answer, Backends
from desk.sessions import StaffSession
from desk.web import (
    Form,
    backends,
    done,
    field_problem,
    fingerprint,
    names_of,
    pages,
    problem,
    render,
    staff,
    store,
    today_tokyo,
)
from secondopinion_contracts.codes import Mode, Relationship

router = APIRouter()

Coordinator = Annotated[StaffSession, Depends(staff("coordinator"))]
DeskReader = Annotated[StaffSession, Depends(staff("coordinator", "physician", "auditor"))]
PAGE_SIZE = 10
INTAKE_STATUSES = ("submitted", "awaiting_documents", "screening", "accepted", "declined", "withdrawn")
WAITING_FOR_DOCUMENTS = ("submitted", "awaiting_documents")
BOARD_CARDS = 20  # the latest cards of each column the board shows
BOARD_COLUMN_MAX = 500  # reporting's most per column
# Where a board column that shows only its latest cards is listed whole, paged: intake's case list by status.
FULL_LISTS = {"submitted": "submitted", "awaiting_documents": "awaiting_documents", "screening": "screening",
              "scheduling": "accepted", "confirmed": "accepted", "consulted": "accepted",
              "report_delivered": "accepted", "closed": "accepted", "declined_withdrawn": "declined"}
AGES = (0, 7, 14, 30)  # the "older than N days" a list is narrowed by


def _age_days(today: date, submitted_on: Any) -> int | None:
    return (today - date.fromisoformat(str(submitted_on)[:10])).days if submitted_on else None


async def _details(b: Backends, token: str, rows: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """Each listed case as intake holds it (names, missing documents): intake logs each read."""
    answers = await asyncio.gather(*(b.get("intake", f"/cases/{row['case_id']}", token) for row in rows))
    return [{**row, **(answer.body if answer.ok else {}), "age_days": _age_days(today, row.get("submitted_on"))}
            for row, answer in zip(rows, answers, strict=True)]


Cursor = Annotated[str | None, Query(max_length=200)]  # intake's `next_cursor`, as it gave it
Offset = Annotated[int, Query(ge=0, le=10_000)]
Department = Annotated[str | None, Query(max_length=64)]
MinAge = Annotated[int, Query(ge=0, le=3650)]


def list_filters(today: date, department: str | None, min_age: int) -> dict[str, Any]:
    """What intake's case list is narrowed by: a department of intake's catalogue (any other is no filter), and
    "older than N days" as submitted on or before today - N (Tokyo)."""
    return {"department": departments.current().offered(department),
            "submitted_to": (today - timedelta(days=min_age)).isoformat() if min_age else None}


async def intake_page(b: Backends, token: str, cursor: str | None, limit: int = PAGE_SIZE,
                      **filters: Any) -> Answer:
    """One page of intake's case list, narrowed by intake; its `next_cursor` asks for the next page."""
    return await b.get("intake", "/cases", token, cursor=cursor, limit=limit, **filters)


def _board_page(cards: list[dict[str, Any]], start: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a list the desk cut from reporting's board (which neither filters nor pages), and where the next
    page starts."""
    following = start + PAGE_SIZE
    return cards[start:following], str(following) if len(cards) > following else None


BOARD_LISTS = ("dates", "choice", "clinics", "delivery")


async def _queue(request: Request, session: StaffSession, department: str | None, min_age: int,
                 cursors: dict[str, str | None], starts: dict[str, int]) -> dict[str, Any]:
    b, token, today = backends(request), session.access_token, today_tokyo(request)
    filters = list_filters(today, department, min_age)
    department = filters["department"]
    lists = await asyncio.gather(
        intake_page(b, token, cursors["documents"], status=list(WAITING_FOR_DOCUMENTS), sort="oldest", **filters),
        intake_page(b, token, cursors["screening"], status="screening", sort="oldest", **filters),
        # Reporting narrows its board as intake narrows its list; the desk sorts the columns into the queue's lists.
        b.get("reporting", "/board", token, per_column=BOARD_COLUMN_MAX, **filters))
    documents, screening, board = lists
    used = {"scheduling", "confirmed", "consulted"}
    board_columns = [column for column in (board.body["columns"] if board.ok else []) if column["column"] in used]
    columns = {column["column"]: column["cards"] for column in board_columns}
    scheduling = columns.get("scheduling", [])
    confirmed = [card for card in columns.get("confirmed", []) if card.get("mode") == Mode.ONLINE]
    consulted = columns.get("consulted", [])
    schedules = await asyncio.gather(*(b.get("scheduling", f"/cases/{card['case_id']}/schedule", token)
                                       for card in scheduling))
    appointments = await asyncio.gather(*(b.get("scheduling", f"/cases/{card['case_id']}/appointment", token)
                                          for card in confirmed))
    board_lists: dict[str, list[dict[str, Any]]] = {"dates": [], "choice": []}
    for card, answer in zip(scheduling, schedules, strict=True):
        board_lists["choice" if answer.ok and answer.body["status"] == "proposed" else "dates"].append(card)
    board_lists["clinics"] = [card for card, answer in zip(confirmed, appointments, strict=True) if answer.ok
                              and not answer.body.get("clinics_booking_ref") and answer.body["status"] == "booked"]
    board_lists["delivery"] = [card for card in consulted if card.get("report_status") == "finalized"]
    day_lists = await asyncio.gather(*(b.get("scheduling", "/appointments", token, date=d.isoformat(),
                                             department=department)
                                       for d in (today, today + timedelta(days=1))))
    queue: dict[str, Any] = {
        "today": day_lists[0].body["appointments"] if day_lists[0].ok else [],
        "tomorrow": day_lists[1].body["appointments"] if day_lists[1].ok else [],
        "revision": board.body["revision"] if board.ok else None,
        "unavailable": [answer.code for answer in lists if not answer.ok],
        # A board column longer than reporting gives at once: its oldest cases are not in these lists.
        "truncated": any(column["total"] > len(column["cards"]) for column in board_columns),
    }
    for name, answer in (("documents", documents), ("screening", screening)):
        # The case's page of intake's list with what intake holds of each (the patient's name): each read is logged.
        rows = answer.body["cases"] if answer.ok else []
        following = answer.body.get("next_cursor") if answer.ok else None
        queue[name] = await _details(b, token, rows, today)
        queue[f"{name}_count"] = f"{len(rows)}+" if following else str(len(rows))  # intake counts no total
        queue[f"{name}_pages"] = pages(request, f"{name}_cursor", following, f"queue-{name}")
    for name in BOARD_LISTS:
        shown, following = _board_page(board_lists[name], starts[name])
        queue[name] = await _details(b, token, shown, today)
        queue[f"{name}_count"] = str(len(board_lists[name]))
        queue[f"{name}_pages"] = pages(request, f"{name}_from", following, f"queue-{name}")
    return queue


@router.get("/queue", response_class=HTMLResponse)
async def work_queue(request: Request, session: Coordinator, department: Department = None, min_age: MinAge = 0,
                     documents_cursor: Cursor = None, screening_cursor: Cursor = None, dates_from: Offset = 0,
                     choice_from: Offset = 0, clinics_from: Offset = 0, delivery_from: Offset = 0) -> Response:
    """The coordinator's lists, each paged on its own: intake's (documents, screening) narrowed and paged by intake;
    those cut from reporting's board (which neither filters nor pages) narrowed and paged by the desk."""
    queue = await _queue(request, session, department, min_age,
                         {"documents": documents_cursor, "screening": screening_cursor},
                         {"dates": dates_from, "choice": choice_from, "clinics": clinics_from,
                          "delivery": delivery_from})
    flash = await store(request).take_flash(session)
    return render(request, "queue.html", session, queue=queue, department=departments.current().offered(department),
                  min_age=min_age, ages=AGES, flash=flash, live=fingerprint(queue["revision"]), live_url="/board/live")


@router.get("/board/live")
async def board_live(request: Request, session: DeskReader) -> JSONResponse:
    answer = await backends(request).get("reporting", "/board", session.access_token, per_column=1)
    return JSONResponse({"fingerprint": fingerprint(answer.body["revision"] if answer.ok else None)},
                        headers={"Cache-Control": "no-store"})


KPI_DAYS = 90


@router.get("/board", response_class=HTMLResponse)
async def board(request: Request, session: DeskReader,
                per_column: Annotated[int | None, Query(ge=1, le=BOARD_COLUMN_MAX)] = None,
                first: Annotated[str | None, Query(alias="from", max_length=40)] = None,
                last: Annotated[str | None, Query(alias="to", max_length=40)] = None) -> Response:
    """The case board with the desk's KPIs over the cases submitted in a period (the last 90 days unless asked)."""
    b = backends(request)
    per_column = per_column or BOARD_CARDS
    today = today_tokyo(request)
    period = {"from": first or (today - timedelta(days=KPI_DAYS)).strftime("%Y/%m/%d"),
              "to": last or today.strftime("%Y/%m/%d")}
    kpi_problem = None
    try:
        since, until = forms.a_date("from", period["from"]), forms.a_date("to", period["to"])
    except forms.FieldError as error:
        kpi_problem, since, until = field_problem(error.field, error.message(session.lang)), None, None
    answer, kpis = await asyncio.gather(
        b.get("reporting", "/board", session.access_token, per_column=per_column),
        b.get("reporting", "/kpis", session.access_token, **({"from": since.isoformat(), "to": until.isoformat()}
                                                             if since and until else {})))
    if not answer.ok:
        return render(request, "error.html", session, status_code=answer.status, problem=problem(answer, session.lang))
    if kpi_problem is None and not kpis.ok:
        kpi_problem = problem(kpis, session.lang)
    full = {column: f"/cases?status={status}" for column, status in FULL_LISTS.items()} \
        if session.holds("coordinator", "physician") else {}
    return render(request, "board.html", session, board=answer.body, live=fingerprint(answer.body["revision"]),
                  live_url="/board/live", full_lists=full, per_column=per_column, column_max=BOARD_COLUMN_MAX,
                  period=period, kpis=kpis.body if kpis.ok and kpi_problem is None else None, kpi_problem=kpi_problem)


# --- a new case from a phone call ---------------------------------------------------------------------

def _new_case_page(request: Request, session: StaffSession, values: dict[str, Any],
                   problem_: dict[str, Any] | None = None, status_code: int = 200,
                   declined: dict[str, Any] | None = None) -> Response:
    return render(request, "new_case.html", session, status_code=status_code, values=values, problem=problem_,
                  relationships=[r.value for r in Relationship],
                  modes=[m.value for m in Mode], declined=declined)


@router.get("/cases/new", response_class=HTMLResponse)
async def new_case_form(request: Request, session: Coordinator) -> Response:
    return _new_case_page(request, session, {"relationship": "self", "mode": "in_person"})


def _yes(form: Any, name: str) -> bool:
    return forms.checked(str(form.get(name, "")))


@router.post("/cases/new", response_class=HTMLResponse)
async def submit_case(request: Request, session: Coordinator, form: Form) -> Response:
    values = {key: str(value) for key, value in form.items()}
    try:
        relationship = forms.choice("relationship", values.get("relationship"), [r.value for r in Relationship])
        patient: dict[str, Any] = {
            "name": forms.required("patient_name", values.get("patient_name")),
            "birth_date": forms.a_date("patient_birth_date", values.get("patient_birth_date")).isoformat(),
            "deceased": _yes(form, "patient_deceased"),
        }
        if relationship == Relationship.FAMILY:
            patient["consents"] = _yes(form, "patient_consents")
        requester_name = (forms.text(values.get("requester_name")) or patient["name"]
                          if relationship == Relationship.SELF else forms.required("requester_name",
                                                                                   values.get("requester_name")))
        body = {
            "requester": {"relationship": relationship, "name": requester_name,
                          "phone": forms.phone("requester_phone", values.get("requester_phone"))},
            "patient": patient,
            "mode": forms.choice("mode", values.get("mode"), [m.value for m in Mode]),
            "department": forms.department("department", values.get("department"), departments.current()),
            "question": forms.required("question", values.get("question")),
            "attending_physician": {"name": forms.required("attending_name", values.get("attending_name")),
                                    "institution": forms.required("attending_institution",
                                                                  values.get("attending_institution")),
                                    "consents": _yes(form, "attending_consents")},
            "wants_treatment_here": _yes(form, "wants_treatment_here"),
            "complaint_or_litigation": _yes(form, "complaint_or_litigation"),
        }
    except forms.FieldError as error:
        return _new_case_page(request, session, values, {"message": error.message(session.lang),
                                                         "fields": {error.field: error.message(session.lang)}},
                              error.status)
    answer = await backends(request).post("intake", "/cases", session.access_token, body)
    if not answer.ok:
        found = problem(answer, session.lang)
        # intake's field names (patient.birth_date) to the form's (patient_birth_date)
        found["fields"] = {key.replace(".", "_").replace("attending_physician", "attending"): value
                           for key, value in found["fields"].items()}
        return _new_case_page(request, session, values, found, answer.status)
    result = answer.body
    if result["status"] == "declined":
        # The facts decided it: the reasons are shown at once, to be told to the caller; the form is cleared so
        # that the same call is not submitted twice.
        return _new_case_page(request, session, {"relationship": "self", "mode": "in_person"}, status_code=201,
                              declined=result)
    return await done(request, session, f"/cases/{result['case_id']}", action="submitted")


# --- finding a case and the case list --------------------------------------------------------------------

@router.get("/find", response_class=HTMLResponse)
async def find_form(request: Request, session: Annotated[StaffSession, Depends(staff("coordinator", "physician"))]
                    ) -> Response:
    return render(request, "find.html", session, values={}, found=None, problem=None)


@router.post("/find", response_class=HTMLResponse)
async def find(request: Request, session: Annotated[StaffSession, Depends(staff("coordinator", "physician"))],
               form: Form) -> Response:
    # Posted, not a query string: what is typed (possibly a name) never appears in the desk's URLs; intake's search
    # keeps it out of its access log and traces too.
    typed = {key: forms.text(str(form.get(key, ""))) for key in ("q", "name", "birth_date", "phone")}
    try:
        case_id = UUID(typed["q"])
    except ValueError:
        case_id = None
    if case_id is not None:
        answer = await backends(request).get("intake", f"/cases/{case_id}", session.access_token)
        if not answer.ok:
            return render(request, "find.html", session, status_code=answer.status, values=typed,
                          problem=problem(answer, session.lang))
        return RedirectResponse(f"/cases/{case_id}", status_code=303)
    if not any(typed.values()):
        return render(request, "find.html", session, status_code=422, values=typed, problem={
            "message": catalogue.label("find_by_what", session.lang)})
    answer = await backends(request).get("intake", "/cases/search", session.access_token,
                                         case_number=typed["q"] or None, name=typed["name"] or None,
                                         birth_date=typed["birth_date"] or None, phone=typed["phone"] or None)
    if not answer.ok:
        return render(request, "find.html", session, status_code=answer.status, values=typed,
                      problem=problem(answer, session.lang))
    found = answer.body["cases"]
    if len(found) == 1:
        return RedirectResponse(f"/cases/{found[0]['case_id']}", status_code=303)
    return render(request, "find.html", session, values=typed, found=found, problem=None)


@router.get("/cases", response_class=HTMLResponse)
async def case_list(request: Request, session: Annotated[StaffSession, Depends(staff("coordinator", "physician"))],
                    status: Annotated[str | None, Query(max_length=32)] = None, department: Department = None,
                    min_age: MinAge = 0, cursor: Cursor = None) -> Response:
    """Every case, newest first, narrowed and paged by intake (status, department, age)."""
    status = status if status in INTAKE_STATUSES else None
    today = today_tokyo(request)
    filters = list_filters(today, department, min_age)
    answer = await intake_page(backends(request), session.access_token, cursor, status=status, **filters)
    rows = answer.body["cases"] if answer.ok else []
    return render(request, "cases.html", session,
                  rows=[{**r, "age_days": _age_days(today, r["submitted_on"])} for r in rows],
                  pages=pages(request, "cursor", answer.body.get("next_cursor") if answer.ok else None),
                  status=status, statuses=INTAKE_STATUSES, department=filters["department"], min_age=min_age,
                  ages=AGES, problem=None if answer.ok else problem(answer, session.lang))


# --- opening slots ---------------------------------------------------------------------------------------

async def _calendar(b: Backends, session: StaffSession, department: str | None, first: date,
                    last: date) -> dict[str, Any]:
    """The business days from `first` to `last`, and the department's slots (none without a department: intake's
    catalogue could not be had)."""
    token = session.access_token
    period = {"from": first.isoformat(), "to": last.isoformat()}
    calls = [b.get("scheduling", "/calendar/business-days", token, **period)]
    if department:
        calls.append(b.get("scheduling", f"/departments/{department}/slots", token, **period))
    days, *slots = await asyncio.gather(*calls)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for slot in slots[0].body["slots"] if slots and slots[0].ok else []:
        by_day.setdefault(str(slot["date"]), []).append(slot)
    return {"business_days": days.body["business_days"] if days.ok else [],
            "closed_days": days.body["closed_days"] if days.ok else [], "slots": by_day}


async def _slots_page(request: Request, session: StaffSession, calendar: dict[str, Any], values: dict[str, Any],
                      problem_: dict[str, Any] | None = None, status_code: int = 200,
                      flash: dict[str, Any] | None = None) -> Response:
    names = await names_of(request, (slot["physician_id"] for day in calendar["slots"].values() for slot in day))
    return render(request, "slots.html", session, status_code=status_code, calendar=calendar, values=values,
                  problem=problem_, flash=flash, names=names)


def _slots_department(department: str | None) -> str | None:
    """The department the slots page shows: the one asked for if intake's catalogue offers it, else its first."""
    offered = departments.current()
    return offered.offered(department) or next(iter(offered.codes), None)


@router.get("/slots", response_class=HTMLResponse)
async def slots_page(request: Request, session: Annotated[StaffSession, Depends(staff("coordinator", "physician"))],
                     department: Department = None,
                     first: Annotated[date | None, Query(alias="from")] = None) -> Response:
    shown = _slots_department(department)
    first = first or today_tokyo(request)
    last = first + timedelta(days=13)
    calendar = await _calendar(backends(request), session, shown, first, last)
    values = {"department": shown, "from": first.strftime("%Y/%m/%d"), "to": last.strftime("%Y/%m/%d"),
              "start_times": "9:30, 10:30", "duration_minutes": "60",
              "physician_id": session.subject if session.holds("physician") else ""}
    return await _slots_page(request, session, calendar, values, flash=await store(request).take_flash(session))


@router.post("/slots", response_class=HTMLResponse)
async def open_slots(request: Request, session: Annotated[StaffSession, Depends(staff("coordinator", "physician"))],
                     form: Form) -> Response:
    values = {key: str(value) for key, value in form.items()}
    try:
        department = forms.department("department", values.get("department"), departments.current())
        first = forms.a_date("from", values.get("from"))
        last = forms.a_date("to", values.get("to"))
        body = {"physician_id": forms.required("physician_id", values.get("physician_id")), "from": first.isoformat(),
                "to": last.isoformat(), "start_times": forms.times("start_times", values.get("start_times")),
                "duration_minutes": forms.whole_number("duration_minutes", values.get("duration_minutes"))}
    except forms.FieldError as error:
        calendar = await _calendar(backends(request), session, _slots_department(values.get("department")),
                                   today_tokyo(request), today_tokyo(request) + timedelta(days=13))
        return await _slots_page(request, session, calendar, values, {"message": error.message(session.lang),
                                                                "fields": {error.field: error.message(session.lang)}},
                           error.status)
    answer = await backends(request).post("scheduling", f"/departments/{department}/slots", session.access_token, body)
    if not answer.ok:
        calendar = await _calendar(backends(request), session, department, first, first + timedelta(days=13))
        return await _slots_page(request, session, calendar, values, problem(answer, session.lang), answer.status)
    opened = len(answer.body["opened"])
    return await done(request, session, f"/slots?department={department}&from={first.isoformat()}",
                      message_key="slots_opened", count=opened)
