"""Scheduling's HTTP API for the desk: the business-day calendar, department slots, candidate dates,
appointments and the day's list."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import Field, field_validator, model_validator

from eventkit.auth import allow
from eventkit.bootstrap import Dispatcher
from eventkit.business_calendar import RECEPTION_CLOSES, RECEPTION_OPENS, BusinessCalendar, Closure
from eventkit.clock import tokyo_date
from eventkit.documents import PDF_MEDIA_TYPE, HospitalSettings, issued_pdf
from eventkit.errors import NotFound
from eventkit.events import Actor, RecordedEvent
from eventkit.http import command_context, from_app_state, now, on_pool
from eventkit.input_policy import DeskDate, RequestModel
from eventkit.service_identity import IntakeDisclosure
from scheduling.commands import (
    CancelAppointment,
    CompleteConsultation,
    ConfirmSlot,
    IssueAppointmentSlip,
    OpenSlots,
    ProposeSlots,
    RecordNoShow,
    RegisterOnlineBooking,
    RescheduleAppointment,
)
from scheduling.events import SlotOpened
from scheduling.handlers import OpenedSlots
from scheduling.queries import ScheduleQueries
from scheduling.repository import CASE_STREAM
from scheduling.slip import SlipFacts, render_slip
from secondopinion_contracts.codes import CancellationReason, CancelledBy, RescheduleReason
from secondopinion_contracts.departments import DepartmentCode

router = APIRouter()

MAX_RANGE_DAYS = 366
Department = Annotated[DepartmentCode, Path(description="Department code (intake's GET /departments), e.g. cardiology")]
StaffId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]
FromDate = Annotated[DeskDate | None, Query(alias="from", description="First day (Asia/Tokyo); default today")]
ToDate = Annotated[DeskDate | None, Query(alias="to", description="Last day, inclusive")]


class Strict(RequestModel):
    pass


class OpenSlotsIn(Strict):
    physician_id: StaffId
    first_day: DeskDate = Field(alias="from", description="First consultation day (Asia/Tokyo).")
    last_day: DeskDate = Field(alias="to", description="Last consultation day, inclusive; closed days are skipped; "
                               f"at most {MAX_RANGE_DAYS} days from `from`.")
    start_times: list[time] = Field(min_length=1, max_length=16, description="Local Asia/Tokyo times, e.g. 09:30.")
    duration_minutes: int = Field(ge=30, le=120)

    @field_validator("start_times")
    @classmethod
    def _local_whole_minutes(cls, values: list[time]) -> list[time]:
        for value in values:
            if value.tzinfo is not None:
                raise ValueError("give local Asia/Tokyo times without an offset, e.g. 09:30")
            if value.second or value.microsecond:
                raise ValueError("start times are whole minutes, e.g. 09:30")
        if len(set(values)) != len(values):
            raise ValueError("start times must be different")
        return values

    @model_validator(mode="after")
    def _bounded_range(self) -> OpenSlotsIn:
        if (self.last_day - self.first_day).days >= MAX_RANGE_DAYS:
            raise ValueError(f"slots may be opened for at most {MAX_RANGE_DAYS} days at once")
        return self


class ProposalIn(Strict):
    slot_ids: list[UUID] = Field(min_length=1, max_length=3, description="One to three open slots of the case's "
                                                                          "department.")

    @field_validator("slot_ids")
    @classmethod
    def _different(cls, values: list[UUID]) -> list[UUID]:
        if len(set(values)) != len(values):
            raise ValueError("propose different slots")
        return values


class ConfirmationIn(Strict):
    slot_id: UUID


class OnlineBookingIn(Strict):
    clinics_booking_ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class RescheduleIn(Strict):
    slot_id: UUID
    reason: RescheduleReason


class CancellationIn(Strict):
    reason_code: CancellationReason
    by: CancelledBy

    @field_validator("reason_code")
    @classmethod
    def _not_withdrawal(cls, value: CancellationReason) -> CancellationReason:
        if value is CancellationReason.CASE_WITHDRAWN:
            raise ValueError("withdraw the case at intake instead; its appointment is then cancelled")
        return value


# Scheduling holds no personal data (ids, codes and dates only), so every staff role may read it.
Reader = Annotated[Actor, Depends(allow("coordinator", "physician", "cashier", "auditor"))]
# The desk arranges dates with the physicians: either may open a physician's slots.
Scheduler = Annotated[Actor, Depends(allow("coordinator", "physician"))]
Coordinator = Annotated[Actor, Depends(allow("coordinator"))]
# Whether the consultation took place (or the patient failed to come) is known to the physician and the desk.
Attending = Annotated[Actor, Depends(allow("physician", "coordinator"))]
Handling = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
Calendar = Annotated[BusinessCalendar, Depends(from_app_state("calendar", BusinessCalendar))]
Now = Annotated[datetime, Depends(now)]
Queries = Annotated[ScheduleQueries, Depends(on_pool(ScheduleQueries))]
PersonalData = Annotated[IntakeDisclosure, Depends(from_app_state("personal_data", IntakeDisclosure))]
Hospital = Annotated[HospitalSettings, Depends(from_app_state("hospital", HospitalSettings))]


def _invalid(location: tuple[str, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": location, "msg": message, "input": None}])


def _range(now: datetime, first: date | None, last: date | None, default_days: int) -> tuple[date, date]:
    first = first or tokyo_date(now)
    last = last or first + timedelta(days=default_days)
    if last < first:
        raise _invalid(("query", "to"), f"must not be before from ({first})")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise _invalid(("query", "to"), f"the range may span at most {MAX_RANGE_DAYS} days")
    return first, last


def _closure(closure: Closure) -> dict[str, Any]:
    return {"date": closure.day, "reason": closure.reason.value, "holiday_name": closure.holiday_name,
            "description": closure.describe()}


def _case_events(recorded: list[RecordedEvent]) -> list[str]:
    return [event.name for event in recorded if event.stream_type == CASE_STREAM]


async def _case_of(q: ScheduleQueries, appointment_id: UUID) -> UUID:
    case_id = await q.case_of_appointment(appointment_id)
    if case_id is None:
        raise NotFound(f"no appointment {appointment_id}")
    return case_id


async def _appointment(q: ScheduleQueries, appointment_id: UUID) -> dict[str, Any]:
    view = await q.appointment(appointment_id)
    if view is None:
        raise NotFound(f"no appointment {appointment_id}")
    return view


# --- calendar ---------------------------------------------------------------------------------------

@router.get("/calendar/business-days", tags=["calendar"])
async def business_days(_: Reader, calendar: Calendar, now: Now, first: FromDate = None,
                        last: ToDate = None) -> dict[str, Any]:
    """The desk's business days in the range, and why every other day is closed."""
    first, last = _range(now, first, last, 30)
    return {
        "from": first, "to": last, "time_zone": "Asia/Tokyo",
        "reception_hours": {"opens": RECEPTION_OPENS.strftime("%H:%M"), "closes": RECEPTION_CLOSES.strftime("%H:%M")},
        "business_days": calendar.business_days(first, last),
        "closed_days": [_closure(closure) for closure in calendar.closures(first, last)],
    }


# --- department slots -------------------------------------------------------------------------------

@router.post("/departments/{department}/slots", status_code=201, tags=["slots"])
async def open_slots(department: Department, body: OpenSlotsIn, actor: Scheduler,
                     handle: Handling) -> dict[str, Any]:
    """Open a physician's consultation slots on every business day of the range at the given times."""
    if actor.role == "physician" and actor.id != body.physician_id:
        raise HTTPException(403, "a physician opens their own slots; the desk opens any physician's")
    command = OpenSlots(department=department, physician_id=body.physician_id, first_day=body.first_day,
                        last_day=body.last_day, start_times=tuple(body.start_times),
                        duration_minutes=body.duration_minutes)
    opened: OpenedSlots = await handle(command, command_context(actor, f"slots:{department}:{body.physician_id}",
                                                                "OpenSlots"))
    slots = [event.data for event in opened.recorded if isinstance(event.data, SlotOpened)]
    return {
        "department": department, "physician_id": body.physician_id,
        "opened": [{"slot_id": slot.slot_id, "start": slot.start, "end": slot.end, "date": tokyo_date(slot.start),
                    "status": "open"} for slot in slots],
        "skipped_days": [_closure(closure) for closure in opened.plan.skipped],
    }


@router.get("/departments/{department}/slots", tags=["slots"])
async def list_slots(department: Department, _: Reader, now: Now, q: Queries, first: FromDate = None,
                     last: ToDate = None, status: Literal["open", "held", "booked"] | None = None) -> dict[str, Any]:
    """The department's slots by day; a held slot whose hold has expired is listed as open."""
    first, last = _range(now, first, last, 30)
    return {"department": department, "from": first, "to": last, "status": status,
            "slots": await q.slots(department, first, last, status, now)}


# --- a case's candidate dates and appointment ---------------------------------------------------------

@router.post("/cases/{case_id}/proposals", status_code=201, tags=["cases"])
async def propose_slots(case_id: UUID, body: ProposalIn, actor: Coordinator, handle: Handling,
                        q: Queries) -> dict[str, Any]:
    """Offer the patient one to three candidate dates; they are held for the case until the hold expires."""
    recorded = await handle(ProposeSlots(case_id=case_id, slot_ids=tuple(body.slot_ids)),
                            command_context(actor, case_id, "ProposeSlots"))
    view = await q.case_schedule(case_id)
    assert view is not None
    return {**view, "events": _case_events(recorded)}


@router.get("/cases/{case_id}/schedule", tags=["cases"])
async def get_case_schedule(case_id: UUID, _: Reader, q: Queries) -> dict[str, Any]:
    """Where the case stands in scheduling: status, candidate dates, current appointment, fee paid."""
    view = await q.case_schedule(case_id)
    if view is None:
        raise NotFound(f"case {case_id} is not known to scheduling (not accepted yet?)")
    return view


@router.post("/cases/{case_id}/appointment", status_code=201, tags=["cases"])
async def confirm_slot(case_id: UUID, body: ConfirmationIn, actor: Coordinator, handle: Handling,
                       q: Queries) -> dict[str, Any]:
    """The patient picked one of the proposed dates: it becomes the case's appointment."""
    appointment_id = uuid4()
    recorded = await handle(ConfirmSlot(case_id=case_id, slot_id=body.slot_id, appointment_id=appointment_id),
                            command_context(actor, case_id, "ConfirmSlot"))
    return {**await _appointment(q, appointment_id), "events": _case_events(recorded)}


@router.get("/cases/{case_id}/appointment", tags=["cases"])
async def get_case_appointment(case_id: UUID, _: Reader, q: Queries) -> dict[str, Any]:
    view = await q.case_appointment(case_id)
    if view is None:
        raise NotFound(f"case {case_id} has no appointment")
    return view


# --- appointments -----------------------------------------------------------------------------------

@router.get("/appointments", tags=["appointments"])
async def day_list(_: Reader, now: Now, q: Queries,
                   day: Annotated[DeskDate | None, Query(alias="date", description="Asia/Tokyo; default today")] = None,
                   department: DepartmentCode | None = None,
                   physician: Annotated[StaffId | None, Query(description="The physician's staff id")] = None,
                   status: Literal["booked", "cancelled", "completed", "no_show"] | None = None) -> dict[str, Any]:
    """The day's appointments for the desk, in start order; of one department or physician if asked."""
    day = day or tokyo_date(now)
    return {"date": day, "appointments": await q.day(day, department, status, physician)}


@router.get("/appointments/{appointment_id}", tags=["appointments"])
async def get_appointment(appointment_id: UUID, _: Reader, q: Queries) -> dict[str, Any]:
    return await _appointment(q, appointment_id)


async def _after(q: ScheduleQueries, appointment_id: UUID, recorded: list[RecordedEvent]) -> dict[str, Any]:
    return {**await _appointment(q, appointment_id), "events": _case_events(recorded)}


@router.post("/appointments/{appointment_id}/slip", tags=["appointments"])
async def issue_slip(appointment_id: UUID, actor: Coordinator, handle: Handling, q: Queries) -> dict[str, Any]:
    """Post the appointment slip again (in person); the first one is issued when the date is confirmed."""
    case_id = await _case_of(q, appointment_id)
    recorded = await handle(IssueAppointmentSlip(case_id=case_id, appointment_id=appointment_id),
                            command_context(actor, case_id, "IssueAppointmentSlip"))
    return await _after(q, appointment_id, recorded)


@router.get("/appointments/{appointment_id}/slip.pdf", tags=["appointments"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The slip, A4 PDF"}})
async def print_slip(appointment_id: UUID, _: Coordinator, request: Request, q: Queries,
                     personal_data: PersonalData, hospital: Hospital) -> Response:
    """The appointment slip as posted to the patient (in person), the latest one issued: after a reschedule it
    is marked as replacing the earlier one. The patient's name and address are read from intake with the
    caller's token for this print only; after erasure they print as ***."""
    facts = SlipFacts.from_view(await _appointment(q, appointment_id))
    person = await personal_data.personal_data(facts.case_id, "slip", request.headers["authorization"])
    content = await run_in_threadpool(render_slip, facts, person, hospital)
    return await issued_pdf(q.pool, "appointment_slip", facts.reference, content, facts.filename)


@router.post("/appointments/{appointment_id}/online-booking", tags=["appointments"])
async def register_online_booking(appointment_id: UUID, body: OnlineBookingIn, actor: Coordinator, handle: Handling,
                                  q: Queries) -> dict[str, Any]:
    """Online: the patient booked the confirmed date on CLINICS."""
    case_id = await _case_of(q, appointment_id)
    command = RegisterOnlineBooking(case_id=case_id, appointment_id=appointment_id,
                                    clinics_booking_ref=body.clinics_booking_ref)
    recorded = await handle(command, command_context(actor, case_id, "RegisterOnlineBooking"))
    return await _after(q, appointment_id, recorded)


@router.post("/appointments/{appointment_id}/reschedule", tags=["appointments"])
async def reschedule(appointment_id: UUID, body: RescheduleIn, actor: Coordinator, handle: Handling,
                     q: Queries) -> dict[str, Any]:
    """Move the appointment to another open slot; the previous slot is freed."""
    case_id = await _case_of(q, appointment_id)
    command = RescheduleAppointment(case_id=case_id, appointment_id=appointment_id, slot_id=body.slot_id,
                                    reason=body.reason)
    recorded = await handle(command, command_context(actor, case_id, "RescheduleAppointment"))
    return await _after(q, appointment_id, recorded)


@router.post("/appointments/{appointment_id}/cancel", tags=["appointments"])
async def cancel(appointment_id: UUID, body: CancellationIn, actor: Coordinator, handle: Handling,
                 q: Queries) -> dict[str, Any]:
    """Cancel the appointment with a coded reason; its slot is freed."""
    case_id = await _case_of(q, appointment_id)
    command = CancelAppointment(case_id=case_id, appointment_id=appointment_id, reason=body.reason_code,
                                cancelled_by=body.by)
    recorded = await handle(command, command_context(actor, case_id, "CancelAppointment"))
    return await _after(q, appointment_id, recorded)


@router.post("/appointments/{appointment_id}/complete", tags=["appointments"])
async def complete(appointment_id: UUID, actor: Attending, handle: Handling, q: Queries) -> dict[str, Any]:
    """The consultation took place (in person: only after the fee was paid at the counter)."""
    case_id = await _case_of(q, appointment_id)
    recorded = await handle(CompleteConsultation(case_id=case_id, appointment_id=appointment_id),
                            command_context(actor, case_id, "CompleteConsultation"))
    return await _after(q, appointment_id, recorded)


@router.post("/appointments/{appointment_id}/no-show", tags=["appointments"])
async def no_show(appointment_id: UUID, actor: Attending, handle: Handling, q: Queries) -> dict[str, Any]:
    """The patient did not come to the appointment."""
    case_id = await _case_of(q, appointment_id)
    recorded = await handle(RecordNoShow(case_id=case_id, appointment_id=appointment_id),
                            command_context(actor, case_id, "RecordNoShow"))
    return await _after(q, appointment_id, recorded)
