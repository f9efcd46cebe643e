"""Scheduling end to end on the real PostgreSQL and RabbitMQ: intake's and billing's events in through
the inbox, the desk's HTTP commands, the event store, the outbox and the bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from eventkit.events import Actor, CommandContext
from eventkit.runtime import wait_until
from eventkit.store import EventStore
from eventkit.testing import (
    EventCollector,
    SettableClock,
    assert_valid,
    bearer,
    publish_event,
    running_app,
)
from scheduling.bootstrap import build
from scheduling.events import SlotBooked
from scheduling.projections import PROJECTIONS
from scheduling.repository import EVENT_TYPES, SLOT_STREAM
from scheduling.settings import SchedulingSettings
from secondopinion_contracts import CloudEvent, EventData
from secondopinion_contracts.codes import Mode, PaymentMethod, WithdrawalReason
from secondopinion_contracts.events.billing import PaymentCaptured
from secondopinion_contracts.events.intake import CaseAccepted, CaseWithdrawn

STAFF = bearer(subject="coord-7")  # a token holding every role; the coordinator role acts where allowed
CONSULTATION_DAY = "2026-12-08"  # a Tuesday




@dataclass
class Desk:
    client: httpx.AsyncClient
    clock: SettableClock
    rabbitmq_url: str
    database: str

    async def accept_case(self, mode: Mode = Mode.IN_PERSON, department: str = "cardiology") -> str:
        case_id = uuid.uuid4()
        await publish_event(self.rabbitmq_url, CaseAccepted(case_id=case_id, department=department, mode=mode,
                                                            screened_by="dr-screen"))
        await self.wait_for_schedule(str(case_id), "awaiting_proposals")
        return str(case_id)

    async def wait_for_schedule(self, case_id: str, status: str, **fields: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def arrived() -> bool:
            response = await self.client.get(f"/cases/{case_id}/schedule")
            seen.update(response.json())
            return response.status_code == 200 and seen["status"] == status and all(
                seen[key] == value for key, value in fields.items())

        await wait_until(arrived, timeout=10)
        return seen

    async def open_slots(self, first: str = CONSULTATION_DAY, last: str | None = None,
                         times: tuple[str, ...] = ("10:00",), physician: str = "dr-sato",
                         department: str = "cardiology") -> list[str]:
        response = await self.client.post(f"/departments/{department}/slots", json={
            "physician_id": physician, "from": first, "to": last or first, "start_times": list(times),
            "duration_minutes": 60})
        assert response.status_code == 201, response.text
        return [slot["slot_id"] for slot in response.json()["opened"]]

    async def propose(self, case_id: str, *slot_ids: str) -> httpx.Response:
        return await self.client.post(f"/cases/{case_id}/proposals", json={"slot_ids": list(slot_ids)})

    async def confirm(self, case_id: str, slot_id: str) -> httpx.Response:
        return await self.client.post(f"/cases/{case_id}/appointment", json={"slot_id": slot_id})

    async def book(self, mode: Mode = Mode.IN_PERSON) -> tuple[str, dict[str, Any], list[str]]:
        case_id = await self.accept_case(mode)
        slots = await self.open_slots(times=("10:00", "14:00"))
        assert (await self.propose(case_id, *slots)).status_code == 201
        confirmed = await self.confirm(case_id, slots[0])
        assert confirmed.status_code == 201, confirmed.text
        return case_id, confirmed.json(), slots

    async def slot_status(self, slot_id: str, day: str = CONSULTATION_DAY) -> str:
        response = await self.client.get("/departments/cardiology/slots", params={"from": day, "to": day})
        statuses: dict[str, str] = {slot["slot_id"]: slot["status"] for slot in response.json()["slots"]}
        return statuses[slot_id]

    async def event_count(self) -> int:
        conn = await asyncpg.connect(self.database)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))  # Tuesday 1 Dec 2026, 10:00 in Tokyo


@pytest.fixture
async def bus(rabbitmq_url: str) -> AsyncIterator[EventCollector]:
    collector = await EventCollector(rabbitmq_url, "scheduling.#").start()
    yield collector
    await collector.stop()


@pytest.fixture
async def desk(database: str, rabbitmq_url: str, clock: SettableClock,
               bus: EventCollector) -> AsyncIterator[Desk]:
    settings = SchedulingSettings(SCHEDULING_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url,
                                  OUTBOX_SWEEP_SECONDS=0.2, SCHEDULING_EXTRA_CLOSURES=[date(2026, 12, 9)])
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield Desk(client, clock, rabbitmq_url, database)




def handled(event: type[EventData], outcome: str) -> float:
    """How many deliveries of `event` this process's consumers ended with `outcome` (a Prometheus counter)."""
    labels = {"service": "scheduling", "event_type": event.type_name(), "outcome": outcome}
    return REGISTRY.get_sample_value("secondopinion_events_handled_total", labels) or 0.0


def of_case(bus: EventCollector, case_id: str) -> list[CloudEvent]:
    return [envelope for envelope in bus.envelopes if envelope.subject == case_id]


async def published(bus: EventCollector, case_id: str, names: list[str]) -> list[CloudEvent]:
    """The case's scheduling events once exactly `names` arrived, each valid against its checked-in schema."""
    await bus.wait_for(lambda _: len(of_case(bus, case_id)) >= len(names))
    await asyncio.sleep(0.3)  # nothing more, nothing twice
    envelopes = of_case(bus, case_id)
    assert [envelope.event_name for envelope in envelopes] == names
    for envelope in envelopes:
        assert_valid(envelope)
        assert envelope.correlationid == case_id
    sequences = [envelope.sequence for envelope in envelopes]
    assert sequences == sorted(set(sequences))
    return envelopes


# --- calendar and slots -----------------------------------------------------------------------------

async def test_the_business_day_calendar_on_real_dates(desk: Desk) -> None:
    response = await desk.client.get("/calendar/business-days", params={"from": "2026-12-24", "to": "2027-01-12"})
    assert response.status_code == 200
    body = response.json()
    assert body["business_days"] == ["2026-12-24", "2026-12-25", "2026-12-28", "2027-01-04", "2027-01-05",
                                     "2027-01-06", "2027-01-07", "2027-01-08", "2027-01-12"]
    closed = {day["date"]: day["reason"] for day in body["closed_days"]}
    assert [closed[f"2026-12-{day}"] for day in (29, 30, 31)] == ["year_end_closure"] * 3
    assert closed["2027-01-02"] == "year_end_closure"
    assert closed["2027-01-09"] == "saturday"
    assert closed["2027-01-11"] == "national_holiday"
    assert body["reception_hours"] == {"opens": "08:30", "closes": "17:00"}
    configured = await desk.client.get("/calendar/business-days", params={"from": "2026-12-08", "to": "2026-12-09"})
    assert configured.json()["business_days"] == ["2026-12-08"]
    assert configured.json()["closed_days"][0]["reason"] == "hospital_closure"
    backwards = await desk.client.get("/calendar/business-days", params={"from": "2027-01-12", "to": "2027-01-11"})
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["loc"] == ["query", "to"]
    assert (await desk.client.get("/calendar/business-days", params={"from": "2026-13-01"})).status_code == 422


async def test_slots_open_on_business_days_and_refusals_say_why_and_record_nothing(desk: Desk) -> None:
    response = await desk.client.post("/departments/cardiology/slots", json={
        "physician_id": "dr-sato", "from": "2026-12-24", "to": "2027-01-05", "start_times": ["09:00", "14:00"],
        "duration_minutes": 60})
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted({slot["date"] for slot in body["opened"]}) == ["2026-12-24", "2026-12-25", "2026-12-28",
                                                                "2027-01-04", "2027-01-05"]
    assert len(body["opened"]) == 10
    assert body["opened"][0]["start"] == "2026-12-24T00:00:00Z"  # 09:00 in Tokyo
    assert {day["date"] for day in body["skipped_days"]} >= {"2026-12-29", "2027-01-01", "2027-01-03"}
    listed = await desk.client.get("/departments/cardiology/slots",
                                   params={"from": "2026-12-28", "to": "2026-12-28", "status": "open"})
    assert [(slot["local_start"], slot["physician_id"]) for slot in listed.json()["slots"]] == [
        ("09:00", "dr-sato"), ("14:00", "dr-sato")]
    before = await desk.event_count()
    assert before == 10

    refusals: list[tuple[dict[str, Any], int, str]] = [
        ({"from": "2026-12-29", "to": "2027-01-03"}, 422, "2026-12-29 is in the year-end/new-year closure"),
        ({"from": "2027-01-11", "to": "2027-01-11"}, 422, "2027-01-11 is a national holiday (成人の日)"),
        ({"from": "2027-01-09", "to": "2027-01-09"}, 422, "2027-01-09 is a Saturday"),
        ({"from": "2026-12-09", "to": "2026-12-09"}, 422, "2026-12-09 is a hospital closure day"),
        ({"start_times": ["08:00"]}, 422, "08:00 is before reception opens at 08:30"),
        ({"start_times": ["16:30"]}, 422, "ends at 17:30, after reception closes at 17:00"),
        ({"start_times": ["09:30"]}, 409, "2026-12-24 09:30 overlaps an existing slot of dr-sato"),
    ]
    for changes, status, reason in refusals:
        request = {"physician_id": "dr-sato", "from": "2026-12-24", "to": "2026-12-24", "start_times": ["11:00"],
                   "duration_minutes": 60, **changes}
        refused = await desk.client.post("/departments/cardiology/slots", json=request)
        assert refused.status_code == status, (changes, refused.text)
        assert any(reason in detail for detail in refused.json()["reasons"]), refused.json()
    malformed: list[dict[str, Any]] = [
        {"duration_minutes": 20}, {"start_times": []}, {"start_times": ["9 o'clock"]}, {"start_times": ["09:00+09:00"]},
        {"start_times": ["10:00", "10:00"]}, {"from": "2026-02-30"}, {"physician_id": ""}, {"note": "extra"},
    ]
    for changes in malformed:
        request = {"physician_id": "dr-sato", "from": "2026-12-24", "to": "2026-12-24", "start_times": ["11:00"],
                   "duration_minutes": 60, **changes}
        refused = await desk.client.post("/departments/cardiology/slots", json=request)
        assert refused.status_code == 422, (changes, refused.text)
        assert all("loc" in error and "msg" in error for error in refused.json()["detail"])
    assert (await desk.client.post("/departments/Cardio%20logy/slots", json={})).status_code == 422
    assert await desk.event_count() == before


# --- the flow ---------------------------------------------------------------------------------------

async def test_in_person_from_case_accepted_to_consultation_completed(desk: Desk, bus: EventCollector) -> None:
    case_id = await desk.accept_case(Mode.IN_PERSON)
    slots = await desk.open_slots(times=("10:00", "14:00"))
    proposal = await desk.propose(case_id, *slots)
    assert proposal.status_code == 201, proposal.text
    assert proposal.json()["status"] == "proposed"
    assert proposal.json()["events"] == ["SlotsProposed"]
    assert proposal.json()["hold_expires_at"] == "2026-12-03T01:00:00Z"
    assert await desk.slot_status(slots[0]) == "held"

    confirmed = await desk.confirm(case_id, slots[1])
    assert confirmed.status_code == 201, confirmed.text
    appointment = confirmed.json()
    assert appointment["events"] == ["SlotConfirmed", "AppointmentSlipIssued"]
    assert appointment["start"] == "2026-12-08T05:00:00Z"
    assert appointment["local_start"] == "14:00"
    assert appointment["slip_issued_on"] == "2026-12-01"
    assert (appointment["status"], appointment["mode"], appointment["physician_id"]) == ("booked", "in_person",
                                                                                         "dr-sato")
    assert await desk.slot_status(slots[0]) == "open", "the other candidate's hold is released"
    assert await desk.slot_status(slots[1]) == "booked"
    assert (await desk.client.get(f"/cases/{case_id}/appointment")).json()["appointment_id"] == \
        appointment["appointment_id"]
    appointment_id = appointment["appointment_id"]

    early = await desk.client.post(f"/appointments/{appointment_id}/complete")
    assert early.status_code == 409
    assert early.json()["reasons"] == ["consultation_day:2026-12-08", "fee_paid"]
    desk.clock.set_tokyo(CONSULTATION_DAY, time(13, 40))
    unpaid = await desk.client.post(f"/appointments/{appointment_id}/complete")
    assert unpaid.status_code == 409
    assert unpaid.json()["reasons"] == ["fee_paid"]
    await publish_event(desk.rabbitmq_url, PaymentCaptured(
        case_id=uuid.UUID(case_id), invoice_id=uuid.uuid4(), amount=33_000, method=PaymentMethod.CASH,
        captured_at=desk.clock.now))
    await desk.wait_for_schedule(case_id, "booked", fee_paid=True)
    desk.clock.set_tokyo(CONSULTATION_DAY, time(15))
    completed = await desk.client.post(f"/appointments/{appointment_id}/complete")
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"
    assert completed.json()["fee_paid"] is True
    day = (await desk.client.get("/appointments", params={"date": CONSULTATION_DAY})).json()
    assert [(row["appointment_id"], row["status"]) for row in day["appointments"]] == [(appointment_id, "completed")]

    envelopes = await published(bus, case_id, ["SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued",
                                               "ConsultationCompleted"])
    assert envelopes[1].data == {
        "case_id": case_id, "appointment_id": appointment_id, "slot_id": slots[1], "start": "2026-12-08T05:00:00Z",
        "end": "2026-12-08T06:00:00Z", "department": "cardiology", "physician_id": "dr-sato", "mode": "in_person"}
    assert envelopes[3].data["completed_at"] == "2026-12-08T06:00:00Z"
    assert envelopes[3].actorid == "coord-7"


async def test_online_from_case_accepted_to_consultation_completed(desk: Desk, bus: EventCollector) -> None:
    case_id, appointment, _ = await desk.book(Mode.ONLINE)
    assert appointment["events"] == ["SlotConfirmed"]
    appointment_id = appointment["appointment_id"]
    desk.clock.set_tokyo(CONSULTATION_DAY, time(10, 30))
    not_booked = await desk.client.post(f"/appointments/{appointment_id}/complete")
    assert not_booked.status_code == 409
    assert not_booked.json()["reasons"] == ["online_booking_registered"]
    booking = await desk.client.post(f"/appointments/{appointment_id}/online-booking",
                                     json={"clinics_booking_ref": "CLN-20261208-0042"})
    assert booking.status_code == 200, booking.text
    assert booking.json()["clinics_booking_ref"] == "CLN-20261208-0042"
    assert (await desk.client.post(f"/appointments/{appointment_id}/online-booking",
                                   json={"clinics_booking_ref": "has spaces"})).status_code == 422
    assert (await desk.client.post(f"/appointments/{appointment_id}/slip")).status_code == 409
    completed = await desk.client.post(f"/appointments/{appointment_id}/complete")
    assert completed.status_code == 200, completed.text
    envelopes = await published(bus, case_id, ["SlotsProposed", "SlotConfirmed", "OnlineBookingRegistered",
                                               "ConsultationCompleted"])
    assert envelopes[0].data["mode"] == "online"
    assert envelopes[2].data["clinics_booking_ref"] == "CLN-20261208-0042"
    assert envelopes[3].data["mode"] == "online"


async def test_a_no_show_is_recorded_once_the_appointment_has_started(desk: Desk, bus: EventCollector) -> None:
    case_id, appointment, slots = await desk.book()
    appointment_id = appointment["appointment_id"]
    desk.clock.set_tokyo(CONSULTATION_DAY, time(9, 59))
    too_soon = await desk.client.post(f"/appointments/{appointment_id}/no-show")
    assert too_soon.status_code == 409
    assert "can only be recorded after" in too_soon.json()["detail"]
    desk.clock.set_tokyo(CONSULTATION_DAY, time(10, 30))
    recorded = await desk.client.post(f"/appointments/{appointment_id}/no-show")
    assert recorded.status_code == 200
    assert recorded.json()["status"] == "no_show"
    envelopes = await published(bus, case_id, ["SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued",
                                               "PatientNoShow"])
    assert envelopes[-1].data["slot_id"] == slots[0]


# --- double booking ---------------------------------------------------------------------------------

async def test_two_desks_confirming_one_slot_for_different_cases_at_once_book_it_once(
        desk: Desk, database: str) -> None:
    """Each case was offered the slot in turn (each hold expired before the next), so every confirmation
    is allowed on its own; together exactly one may win, decided by the slot stream's version."""
    cases = [await desk.accept_case() for _ in range(4)]
    [slot_id] = await desk.open_slots(first="2026-12-22")
    for case_id in cases:
        assert (await desk.propose(case_id, slot_id)).status_code == 201
        desk.clock.advance(timedelta(hours=48, minutes=1))
    responses = await asyncio.gather(*(desk.confirm(case_id, slot_id) for case_id in cases))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    winner = next(case for case, response in zip(cases, responses, strict=True) if response.status_code == 201)
    for response in responses:
        if response.status_code == 409:
            assert f"slot {slot_id} cannot be booked" in response.json()["detail"]
            assert response.json()["reasons"] == [f"slot {slot_id} is already booked"]
    conn = await asyncpg.connect(database)
    try:
        confirmed = await conn.fetch("SELECT stream_id FROM events WHERE event_type = 'SlotConfirmed'")
        bookings = await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'SlotBooked'")
    finally:
        await conn.close()
    assert [row["stream_id"] for row in confirmed] == [f"case_schedule-{winner}"]
    assert bookings == 1
    listed = await desk.client.get("/departments/cardiology/slots", params={"from": "2026-12-22", "to": "2026-12-22"})
    assert listed.json()["slots"][0]["booked_for_case"] == winner


async def test_two_desks_confirming_one_slot_for_the_same_case_at_once_book_it_once(desk: Desk) -> None:
    case_id = await desk.accept_case()
    slots = await desk.open_slots(times=("10:00", "14:00"))
    await desk.propose(case_id, *slots)
    responses = await asyncio.gather(desk.confirm(case_id, slots[0]), desk.confirm(case_id, slots[0]))
    assert sorted(response.status_code for response in responses) == [201, 409]
    responses = await asyncio.gather(desk.confirm(case_id, slots[1]), desk.confirm(case_id, slots[1]))
    assert [response.status_code for response in responses] == [409, 409], "the case already has its appointment"
    appointments = (await desk.client.get("/appointments", params={"date": CONSULTATION_DAY})).json()["appointments"]
    assert len(appointments) == 1


async def test_a_booking_committed_by_another_desk_mid_confirmation_makes_the_confirmation_lose(
        desk: Desk, database: str) -> None:
    """Forces the interleaving: another desk's booking of the slot is appended but not yet committed when
    this confirmation appends the same slot version. The confirmation waits on the (stream, version)
    constraint, fails when the other commits, decides again and is refused: nothing of it is recorded."""
    case_id = await desk.accept_case()
    [slot_id] = await desk.open_slots()
    assert (await desk.propose(case_id, slot_id)).status_code == 201
    desk.clock.advance(timedelta(hours=49))  # the hold lapsed: another desk may book the slot
    other_desk = CommandContext(actor=Actor("coord-9", "coordinator"), correlation_id=str(uuid.uuid4()))
    pool = await asyncpg.create_pool(database, min_size=2, max_size=2)
    assert pool is not None
    store = EventStore(pool, service="scheduling", types=EVENT_TYPES, projections=PROJECTIONS)
    try:
        async with pool.acquire() as conn:
            in_flight = conn.transaction()
            await in_flight.start()
            stream = f"slot-{slot_id}"
            version = await conn.fetchval("SELECT max(version) FROM events WHERE stream_id = $1", stream)
            await store.append(stream, SLOT_STREAM, version, [SlotBooked(
                slot_id=uuid.UUID(slot_id), case_id=uuid.UUID(other_desk.correlation_id),
                appointment_id=uuid.uuid4())], other_desk, conn=conn)
            confirming = asyncio.create_task(desk.confirm(case_id, slot_id))

            async def confirmation_waits_for_the_other_booking() -> bool:
                return bool(await pool.fetchval(
                    "SELECT count(*) > 0 FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"))

            await wait_until(confirmation_waits_for_the_other_booking, timeout=10)
            await in_flight.commit()
        response = await confirming
    finally:
        await pool.close()
    assert response.status_code == 409, response.text
    assert response.json()["reasons"] == [f"slot {slot_id} is already booked"]
    schedule = (await desk.client.get(f"/cases/{case_id}/schedule")).json()
    assert (schedule["status"], schedule["appointment_id"]) == ("proposed", None)
    assert await desk.slot_status(slot_id) == "booked"


async def test_a_slot_held_for_one_case_is_not_offered_to_another_until_the_hold_expires(desk: Desk) -> None:
    first, second = await desk.accept_case(), await desk.accept_case()
    [slot_id] = await desk.open_slots()
    assert (await desk.propose(first, slot_id)).status_code == 201
    taken = await desk.propose(second, slot_id)
    assert taken.status_code == 409
    assert taken.json()["reasons"] == [f"slot {slot_id} is held for another case until 2026-12-03T01:00:00+00:00"]
    assert (await desk.confirm(second, slot_id)).status_code == 409
    desk.clock.advance(timedelta(hours=48))
    assert (await desk.propose(second, slot_id)).status_code == 201
    late = await desk.confirm(first, slot_id)
    assert late.status_code == 409, "the first case's hold lapsed and the slot is now held for the second"
    assert (await desk.confirm(second, slot_id)).status_code == 201


# --- reschedule, cancel, withdrawal -------------------------------------------------------------------

async def test_reschedule_and_cancel_free_their_slots(desk: Desk, bus: EventCollector) -> None:
    case_id, appointment, slots = await desk.book()
    appointment_id = appointment["appointment_id"]
    [later_slot] = await desk.open_slots(first="2026-12-10", physician="dr-ito")
    moved = await desk.client.post(f"/appointments/{appointment_id}/reschedule",
                                   json={"slot_id": later_slot, "reason": "patient_request"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["events"] == ["AppointmentRescheduled", "AppointmentSlipIssued"]
    assert (moved.json()["slot_id"], moved.json()["physician_id"], moved.json()["date"]) == (
        later_slot, "dr-ito", "2026-12-10")
    assert moved.json()["reschedules"][0]["from_slot_id"] == slots[0]
    assert await desk.slot_status(slots[0]) == "open"
    assert await desk.slot_status(later_slot, "2026-12-10") == "booked"

    cancelled = await desk.client.post(f"/appointments/{appointment_id}/cancel",
                                       json={"reason_code": "patient_unwell", "by": "patient"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancellation"]["reason"] == "patient_unwell"
    assert await desk.slot_status(later_slot, "2026-12-10") == "open"
    again = await desk.client.post(f"/appointments/{appointment_id}/cancel",
                                   json={"reason_code": "patient_unwell", "by": "patient"})
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    # The desk may arrange another date for the case, which is a new appointment.
    assert (await desk.propose(case_id, later_slot)).status_code == 201
    rebooked = await desk.confirm(case_id, later_slot)
    assert rebooked.status_code == 201
    assert rebooked.json()["appointment_id"] != appointment_id

    envelopes = await published(bus, case_id, [
        "SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued", "AppointmentRescheduled", "AppointmentSlipIssued",
        "AppointmentCancelled", "SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued"])
    assert envelopes[3].data["previous_slot_id"] == slots[0]
    assert envelopes[3].data["slot_id"] == later_slot
    assert envelopes[5].data == {"case_id": case_id, "appointment_id": appointment_id, "slot_id": later_slot,
                                 "reason": "patient_unwell", "cancelled_by": "patient"}


async def test_case_withdrawn_cancels_the_appointment_and_frees_its_slot(desk: Desk, bus: EventCollector) -> None:
    case_id, _, slots = await desk.book()
    await publish_event(desk.rabbitmq_url, CaseWithdrawn(case_id=uuid.UUID(case_id),
                                                         reason=WithdrawalReason.PATIENT_REQUEST))
    await desk.wait_for_schedule(case_id, "withdrawn")
    envelopes = await published(bus, case_id, ["SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued",
                                               "AppointmentCancelled"])
    assert envelopes[-1].data["reason"] == "case_withdrawn"
    assert envelopes[-1].data["cancelled_by"] == "hospital"
    assert envelopes[-1].actorid == "scheduling"
    assert await desk.slot_status(slots[0]) == "open"
    refused = await desk.propose(case_id, slots[0])
    assert refused.status_code == 409
    assert "withdrawn" in refused.json()["detail"]


async def test_events_arriving_out_of_order_or_twice_are_handled_by_what_they_mean(desk: Desk) -> None:
    duplicates = handled(CaseAccepted, "duplicate")
    paid_first = uuid.uuid4()
    await publish_event(desk.rabbitmq_url, PaymentCaptured(
        case_id=paid_first, invoice_id=uuid.uuid4(), amount=33_000, method=PaymentMethod.CARD,
        captured_at=desk.clock.now))
    accepted = CaseAccepted(case_id=paid_first, department="cardiology", mode=Mode.IN_PERSON, screened_by="dr-x")
    sent = await publish_event(desk.rabbitmq_url, accepted)
    await publish_event(desk.rabbitmq_url, accepted, event_id=sent.id)  # a redelivery of the same event
    await publish_event(desk.rabbitmq_url, accepted)  # the same fact again under a new id
    withdrawn_first = uuid.uuid4()
    await publish_event(desk.rabbitmq_url, CaseWithdrawn(case_id=withdrawn_first, reason=WithdrawalReason.OTHER))
    await publish_event(desk.rabbitmq_url, CaseAccepted(case_id=withdrawn_first, department="cardiology",
                                                        mode=Mode.ONLINE, screened_by="dr-x"))

    async def all_consumed() -> bool:
        conn = await asyncpg.connect(desk.database)
        try:
            distinct_ids = int(await conn.fetchval("SELECT count(*) FROM inbox"))
        finally:
            await conn.close()
        return distinct_ids == 5 and handled(CaseAccepted, "duplicate") == duplicates + 1

    await wait_until(all_consumed, timeout=10)
    view = await desk.wait_for_schedule(str(paid_first), "awaiting_proposals", fee_paid=True)
    assert view["version"] == 2, "the payment and one acceptance, however often it arrived"
    assert (await desk.client.get(f"/cases/{withdrawn_first}/schedule")).json()["status"] == "withdrawn"
    conn = await asyncpg.connect(desk.database)
    try:
        started = await conn.fetch("SELECT stream_id FROM events WHERE event_type = 'SchedulingStarted'")
    finally:
        await conn.close()
    assert [row["stream_id"] for row in started] == [f"case_schedule-{paid_first}"], "none after the withdrawal"


# --- bad input ----------------------------------------------------------------------------------------

async def test_bad_input_gets_4xx_with_a_reason_and_records_nothing(desk: Desk) -> None:
    case_id, appointment, slots = await desk.book()
    appointment_id = appointment["appointment_id"]
    before = await desk.event_count()
    unknown = str(uuid.uuid4())
    cases: list[tuple[str, str, dict[str, Any] | None, int]] = [
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": [str(uuid.uuid4()) for _ in range(4)]}, 422),
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": [slots[1], slots[1]]}, 422),
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": []}, 422),
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": ["not-a-uuid"]}, 422),
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": [slots[1]], "urgent": True}, 422),
        ("post", f"/cases/{case_id}/proposals", {"slot_ids": [slots[1]]}, 409),  # already booked
        ("post", f"/cases/{unknown}/proposals", {"slot_ids": [slots[1]]}, 404),
        ("post", f"/cases/{unknown}/appointment", {"slot_id": slots[1]}, 404),
        ("post", f"/cases/{case_id}/appointment", {"slot_id": slots[1]}, 409),
        ("post", f"/appointments/{unknown}/complete", None, 404),
        ("post", f"/appointments/{appointment_id}/complete", None, 409),
        ("post", f"/appointments/{appointment_id}/no-show", None, 409),
        ("post", f"/appointments/{appointment_id}/online-booking", {"clinics_booking_ref": "CLN-1"}, 409),
        ("post", f"/appointments/{appointment_id}/cancel", {"reason_code": "case_withdrawn", "by": "hospital"}, 422),
        ("post", f"/appointments/{appointment_id}/cancel", {"reason_code": "physician_unavailable", "by": "patient"},
         422),
        ("post", f"/appointments/{appointment_id}/cancel", {"reason_code": "bored", "by": "patient"}, 422),
        ("post", f"/appointments/{appointment_id}/cancel", {"reason_code": "other"}, 422),
        ("post", f"/appointments/{appointment_id}/reschedule", {"slot_id": slots[0], "reason": "patient_request"},
         409),  # it is already in that slot
        ("post", f"/appointments/{appointment_id}/reschedule", {"slot_id": unknown, "reason": "patient_request"}, 404),
        ("post", f"/appointments/{appointment_id}/reschedule", {"slot_id": slots[1], "reason": "whim"}, 422),
        ("get", f"/cases/{unknown}/appointment", None, 404),
        ("get", f"/cases/{unknown}/schedule", None, 404),
        ("get", "/appointments/not-a-uuid", None, 422),
        ("get", "/appointments?date=2026-12-32", None, 422),
        ("get", "/departments/cardiology/slots?status=free", None, 422),
    ]
    for method, path, body, status in cases:
        response = await desk.client.request(method.upper(), path, json=body)
        assert response.status_code == status, (path, body, response.text)
        detail = response.json()["detail"]
        assert detail, (path, response.text)
        if status == 422 and isinstance(detail, list):
            assert all("loc" in error and "msg" in error for error in detail)
    assert await desk.event_count() == before


# --- read models ------------------------------------------------------------------------------------

async def test_projection_rebuild_gives_the_same_views(desk: Desk) -> None:
    case_id, appointment, slots = await desk.book()
    await desk.client.post(f"/appointments/{appointment['appointment_id']}/cancel",
                           json={"reason_code": "physician_unavailable", "by": "hospital"})
    await desk.propose(case_id, slots[1])
    views = [f"/cases/{case_id}/schedule", f"/cases/{case_id}/appointment",
             f"/appointments/{appointment['appointment_id']}", f"/appointments?date={CONSULTATION_DAY}",
             f"/departments/cardiology/slots?from={CONSULTATION_DAY}&to={CONSULTATION_DAY}"]
    live = [(await desk.client.get(path)).json() for path in views]
    runtime = desk.client._transport.app.state.runtime  # type: ignore[attr-defined]
    assert await runtime.store.rebuild_projections() == await desk.event_count()
    assert [(await desk.client.get(path)).json() for path in views] == live
    assert live[-1]["slots"][1]["status"] == "held"


async def test_each_role_does_its_own_work(desk: Desk) -> None:
    case_id, appointment, slots = await desk.book()
    cashier, physician = bearer("cashier", subject="cash-1"), bearer("physician", subject="dr-sato")
    day = await desk.client.get("/appointments", params={"date": CONSULTATION_DAY}, headers=cashier)
    assert [row["appointment_id"] for row in day.json()["appointments"]] == [appointment["appointment_id"]]
    assert (await desk.client.post(f"/cases/{case_id}/appointment", json={"slot_id": slots[1]},
                                   headers=cashier)).status_code == 403
    assert (await desk.client.post(f"/cases/{case_id}/proposals", json={"slot_ids": [slots[1]]},
                                   headers=physician)).status_code == 403
    own, others = ({"physician_id": physician_id, "from": "2026-12-10", "to": "2026-12-10", "start_times": ["09:00"],
                    "duration_minutes": 30} for physician_id in ("dr-sato", "dr-ito"))
    assert (await desk.client.post("/departments/cardiology/slots", json=own, headers=physician)).status_code == 201
    assert (await desk.client.post("/departments/cardiology/slots", json=others, headers=physician)).status_code \
        == 403
    desk.clock.set_tokyo(CONSULTATION_DAY, time(10, 5))
    no_show = await desk.client.post(f"/appointments/{appointment['appointment_id']}/no-show", headers=physician)
    assert no_show.status_code == 200, no_show.text
    assert (await desk.client.get("/calendar/business-days", headers={})).status_code == 200  # the desk's token
    anonymous = await desk.client.get("/calendar/business-days", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_health_and_readiness(desk: Desk) -> None:
    assert (await desk.client.get("/healthz")).json() == {"status": "alive", "service": "scheduling"}
    ready = await desk.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["consumer_attached"] is True


