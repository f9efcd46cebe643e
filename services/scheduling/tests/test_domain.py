"""Slot and case-schedule rules: given past events, when a command, then new events (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import pytest

from eventkit.business_calendar import BusinessCalendar, tokyo_datetime
from eventkit.clock import tokyo_date
from eventkit.errors import CommandRejected, InvalidCommand, NotFound
from eventkit.events import Event
from scheduling import domain
from scheduling.commands import (
    CancelAppointment,
    CompleteConsultation,
    ConfirmSlot,
    IssueAppointmentSlip,
    OpenSlots,
    ProposeSlots,
    RecordFeePayment,
    RecordNoShow,
    RecordWithdrawal,
    RegisterOnlineBooking,
    RescheduleAppointment,
    StartScheduling,
)
from scheduling.events import (
    CaseWithdrawalRecorded,
    FeePaymentRecorded,
    HoldReleaseReason,
    SchedulingStarted,
    SlotBooked,
    SlotFreed,
    SlotFreeReason,
    SlotHeld,
    SlotHoldReleased,
    SlotOpened,
)
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, RescheduleReason, WithdrawalReason
from secondopinion_contracts.events.scheduling import (
    AppointmentCancelled,
    AppointmentRescheduled,
    AppointmentSlipIssued,
    ConsultationCompleted,
    OnlineBookingRegistered,
    PatientNoShow,
    SlotConfirmed,
    SlotsProposed,
)

CALENDAR = BusinessCalendar()
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # Tuesday 1 Dec 2026, 10:00 in Tokyo
HOLD = timedelta(hours=48)
HORIZON = timedelta(days=365)
CASE_ID = uuid.uuid4()
OTHER_CASE = uuid.uuid4()
APPOINTMENT_ID = uuid.uuid4()
CONSULTATION_DAY = date(2026, 12, 8)


def opened(department: str = "cardiology", day: date = CONSULTATION_DAY, at: time = time(10),
           physician: str = "dr-sato") -> tuple[domain.Slot, list[Event]]:
    start = tokyo_datetime(day, at).astimezone(UTC)
    events: list[Event] = [SlotOpened(slot_id=uuid.uuid4(), department=department, physician_id=physician,
                                      start=start, end=start + timedelta(minutes=60))]
    slot = fold_slot(events)
    assert slot is not None
    return slot, events


def fold_slot(events: Iterable[Event], slot: domain.Slot | None = None) -> domain.Slot | None:
    for event in events:
        slot = domain.evolve_slot(slot, event)
    return slot


def fold(events: Iterable[Event], case: domain.CaseSchedule | None = None) -> domain.CaseSchedule:
    case = case or domain.CaseSchedule()
    for event in events:
        case = domain.evolve(case, event)
    return case


def by_id(*slots: domain.Slot) -> dict[UUID, domain.Slot | None]:
    return {slot.slot_id: slot for slot in slots}


def apply(decision: domain.Decision, case: domain.CaseSchedule,
          slots: dict[UUID, domain.Slot | None]) -> tuple[domain.CaseSchedule, dict[UUID, domain.Slot | None]]:
    after = {slot_id: fold_slot(decision.slot_events.get(slot_id, []), slot) for slot_id, slot in slots.items()}
    return fold(decision.case_events, case), after


def names(events: Sequence[Event]) -> list[str]:
    return [event.NAME for event in events]


def accepted(mode: Mode = Mode.IN_PERSON) -> domain.CaseSchedule:
    return fold(domain.start_scheduling(StartScheduling(CASE_ID, "cardiology", mode), domain.CaseSchedule()))


def proposed(mode: Mode = Mode.IN_PERSON, count: int = 2) -> tuple[domain.CaseSchedule, list[domain.Slot]]:
    slots = [opened(at=time(9 + i))[0] for i in range(count)]
    decision = domain.propose(ProposeSlots(CASE_ID, tuple(s.slot_id for s in slots)), accepted(mode), by_id(*slots),
                              NOW, HOLD)
    case, after = apply(decision, accepted(mode), by_id(*slots))
    return case, [after[s.slot_id] for s in slots]  # type: ignore[misc]


def booked(mode: Mode = Mode.IN_PERSON) -> tuple[domain.CaseSchedule, list[domain.Slot]]:
    case, slots = proposed(mode)
    decision = domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), case, by_id(*slots), NOW)
    case, after = apply(decision, case, by_id(*slots))
    return case, [after[s.slot_id] for s in slots]  # type: ignore[misc]


def on_day(hour: int = 12, day: date = CONSULTATION_DAY) -> datetime:
    return tokyo_datetime(day, time(hour)).astimezone(UTC)


# --- opening slots ------------------------------------------------------------------------------------

def open_command(**changes: object) -> OpenSlots:
    values: dict[str, object] = {"department": "cardiology", "physician_id": "dr-sato", "first_day": date(2026, 12, 24),
                                 "last_day": date(2027, 1, 5), "start_times": (time(9), time(14)),
                                 "duration_minutes": 60}
    values.update(changes)
    return OpenSlots(**values)  # type: ignore[arg-type]


def plan(command: OpenSlots, existing: Sequence[tuple[datetime, datetime]] = ()) -> domain.SlotPlan:
    return domain.open_slots(command, CALENDAR, NOW, HORIZON, existing, uuid.uuid4)


def test_slots_open_on_each_business_day_of_the_range_and_closed_days_are_reported() -> None:
    result = plan(open_command())
    days = sorted({tokyo_date(event.start) for event in result.opened})
    assert days == [date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 4), date(2027, 1, 5)]
    assert len(result.opened) == 10
    first = min(result.opened, key=lambda event: event.start)
    assert first.start == datetime(2026, 12, 24, 0, 0, tzinfo=UTC)  # 09:00 Tokyo, stored in UTC
    assert first.end - first.start == timedelta(minutes=60)
    assert [closure.day for closure in result.skipped][:3] == [date(2026, 12, 26), date(2026, 12, 27),
                                                              date(2026, 12, 29)]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"start_times": (time(8),)}, "08:00 is before reception opens at 08:30"),
    ({"start_times": (time(16, 30),)}, "ends at 17:30, after reception closes at 17:00"),
    ({"start_times": (time(9), time(9, 30))}, "the 09:00 and 09:30 slots overlap"),
    ({"first_day": date(2026, 12, 29), "last_day": date(2027, 1, 3)}, "is in the year-end/new-year closure"),
    ({"first_day": date(2027, 1, 11), "last_day": date(2027, 1, 11)}, "is a national holiday (成人の日)"),
    ({"first_day": date(2026, 11, 30), "last_day": date(2026, 12, 1)}, "2026-11-30 09:00 is in the past"),
    ({"first_day": date(2027, 12, 6), "last_day": date(2027, 12, 6)}, "beyond the booking horizon"),
    ({"first_day": date(2027, 1, 5), "last_day": date(2027, 1, 4)}, "to 2027-01-04 < from 2027-01-05"),
])
def test_slots_outside_business_days_or_hours_are_refused_with_the_reason(changes: dict[str, object],
                                                                          reason: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        plan(open_command(**changes))
    assert any(reason in detail for detail in refused.value.details), refused.value.details


def test_slots_overlapping_the_physicians_existing_slots_conflict() -> None:
    existing = [(datetime(2026, 12, 24, 0, 30, tzinfo=UTC), datetime(2026, 12, 24, 1, 30, tzinfo=UTC))]
    with pytest.raises(CommandRejected) as conflict:
        plan(open_command(), existing)
    assert conflict.value.status_code == 409
    assert conflict.value.details == ["2026-12-24 09:00 overlaps an existing slot of dr-sato"]
    assert len(plan(open_command(start_times=(time(10, 30),)), existing).opened) == 5


# --- reactions to intake and billing -----------------------------------------------------------------

def test_case_accepted_starts_scheduling_once() -> None:
    events = domain.start_scheduling(StartScheduling(CASE_ID, "cardiology", Mode.ONLINE), domain.CaseSchedule())
    assert events == [SchedulingStarted(case_id=CASE_ID, department="cardiology", mode=Mode.ONLINE)]
    case = fold(events)
    assert case.status is domain.CaseStatus.AWAITING_PROPOSALS
    assert domain.start_scheduling(StartScheduling(CASE_ID, "cardiology", Mode.ONLINE), case) == []


def test_a_withdrawal_before_the_acceptance_keeps_the_case_closed() -> None:
    decision = domain.record_withdrawal(RecordWithdrawal(CASE_ID, WithdrawalReason.PATIENT_REQUEST),
                                        domain.CaseSchedule(), {})
    assert names(decision.case_events) == ["CaseWithdrawalRecorded"]
    case = fold(decision.case_events)
    assert domain.start_scheduling(StartScheduling(CASE_ID, "cardiology", Mode.ONLINE), case) == []
    assert case.status is domain.CaseStatus.WITHDRAWN


def test_a_payment_for_an_unknown_case_is_remembered_and_counted_once() -> None:
    invoice = uuid.uuid4()
    payment = RecordFeePayment(CASE_ID, invoice, 33_000, NOW)
    events = domain.record_fee_payment(payment, domain.CaseSchedule())
    assert events == [FeePaymentRecorded(case_id=CASE_ID, invoice_id=invoice, amount=33_000, captured_at=NOW)]
    case = fold([*events, SchedulingStarted(case_id=CASE_ID, department="cardiology", mode=Mode.IN_PERSON)])
    assert case.fee_paid
    assert case.status is domain.CaseStatus.AWAITING_PROPOSALS
    assert domain.record_fee_payment(payment, case) == []


# --- proposals -----------------------------------------------------------------------------------------

def test_proposing_holds_the_slots_for_the_case_until_the_hold_expires() -> None:
    one, two = opened(at=time(9))[0], opened(at=time(11))[0]
    decision = domain.propose(ProposeSlots(CASE_ID, (one.slot_id, two.slot_id)), accepted(), by_id(one, two), NOW, HOLD)
    proposal = decision.case_events[0]
    assert isinstance(proposal, SlotsProposed)
    assert [candidate.slot_id for candidate in proposal.candidates] == [one.slot_id, two.slot_id]
    assert proposal.hold_expires_at == NOW + HOLD
    assert proposal.mode is Mode.IN_PERSON
    assert decision.slot_events == {
        one.slot_id: [SlotHeld(slot_id=one.slot_id, case_id=CASE_ID, hold_expires_at=NOW + HOLD)],
        two.slot_id: [SlotHeld(slot_id=two.slot_id, case_id=CASE_ID, hold_expires_at=NOW + HOLD)],
    }
    assert fold(decision.case_events, accepted()).status is domain.CaseStatus.PROPOSED


def test_a_slot_held_for_one_case_cannot_be_proposed_to_another_until_the_hold_expires() -> None:
    _, slots = proposed()
    other = fold([SchedulingStarted(case_id=OTHER_CASE, department="cardiology", mode=Mode.ONLINE)])
    command = ProposeSlots(OTHER_CASE, (slots[0].slot_id,))
    with pytest.raises(CommandRejected) as refused:
        domain.propose(command, other, by_id(slots[0]), NOW + HOLD - timedelta(seconds=1), HOLD)
    assert refused.value.code == "slot_unavailable"
    assert "held for another case" in refused.value.details[0]
    decision = domain.propose(command, other, by_id(slots[0]), NOW + HOLD, HOLD)
    assert names(decision.slot_events[slots[0].slot_id]) == ["SlotHeld"]


def test_a_new_proposal_releases_the_holds_it_replaces() -> None:
    case, slots = proposed(count=2)
    third = opened(at=time(15))[0]
    decision = domain.propose(ProposeSlots(CASE_ID, (slots[1].slot_id, third.slot_id)), case,
                              by_id(*slots, third), NOW, HOLD)
    assert decision.slot_events[slots[0].slot_id] == [
        SlotHoldReleased(slot_id=slots[0].slot_id, case_id=CASE_ID, reason=HoldReleaseReason.PROPOSAL_REPLACED)]
    assert names(decision.slot_events[slots[1].slot_id]) == ["SlotHeld"]
    assert names(decision.slot_events[third.slot_id]) == ["SlotHeld"]


@pytest.mark.parametrize("problem", ["other_department", "booked", "past"])
def test_slots_that_cannot_be_offered_are_refused_with_the_reason(problem: str) -> None:
    slot = opened(department="neurology")[0] if problem == "other_department" else opened()[0]
    if problem == "booked":
        slot = fold_slot([SlotBooked(slot_id=slot.slot_id, case_id=OTHER_CASE, appointment_id=uuid.uuid4())],
                         slot)  # type: ignore[assignment]
    now = slot.start if problem == "past" else NOW
    with pytest.raises(CommandRejected) as refused:
        domain.propose(ProposeSlots(CASE_ID, (slot.slot_id,)), accepted(), by_id(slot), now, HOLD)
    expected = {"other_department": "is in neurology, the case is for cardiology", "booked": "is already booked",
                "past": "which has passed"}[problem]
    assert expected in refused.value.details[0]


def test_proposals_need_a_known_open_case_and_known_slots() -> None:
    slot = opened()[0]
    with pytest.raises(NotFound):
        domain.propose(ProposeSlots(CASE_ID, (slot.slot_id,)), domain.CaseSchedule(), by_id(slot), NOW, HOLD)
    with pytest.raises(NotFound):
        domain.propose(ProposeSlots(CASE_ID, (uuid.uuid4(),)), accepted(), {}, NOW, HOLD)
    withdrawn = fold([CaseWithdrawalRecorded(case_id=CASE_ID, reason=WithdrawalReason.OTHER)], accepted())
    with pytest.raises(CommandRejected, match="withdrawn"):
        domain.propose(ProposeSlots(CASE_ID, (slot.slot_id,)), withdrawn, by_id(slot), NOW, HOLD)
    case, _ = booked()
    with pytest.raises(CommandRejected, match="reschedule it instead"):
        domain.propose(ProposeSlots(CASE_ID, (slot.slot_id,)), case, by_id(slot), NOW, HOLD)


# --- confirmation ------------------------------------------------------------------------------------

def test_confirming_books_the_slot_issues_the_slip_in_person_and_releases_the_other_holds() -> None:
    case, slots = proposed(Mode.IN_PERSON)
    decision = domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), case, by_id(*slots), NOW)
    assert decision.case_events == [
        SlotConfirmed(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, slot_id=slots[0].slot_id, start=slots[0].start,
                      end=slots[0].end, department="cardiology", physician_id="dr-sato", mode=Mode.IN_PERSON),
        AppointmentSlipIssued(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, issued_on=date(2026, 12, 1)),
    ]
    assert decision.slot_events == {
        slots[0].slot_id: [SlotBooked(slot_id=slots[0].slot_id, case_id=CASE_ID, appointment_id=APPOINTMENT_ID)],
        slots[1].slot_id: [SlotHoldReleased(slot_id=slots[1].slot_id, case_id=CASE_ID,
                                            reason=HoldReleaseReason.OTHER_SLOT_CONFIRMED)],
    }
    after, after_slots = apply(decision, case, by_id(*slots))
    assert after.status is domain.CaseStatus.BOOKED
    assert after_slots[slots[0].slot_id].status is domain.SlotStatus.BOOKED  # type: ignore[union-attr]
    assert after_slots[slots[1].slot_id].hold is None  # type: ignore[union-attr]


def test_an_online_confirmation_has_no_slip() -> None:
    case, slots = proposed(Mode.ONLINE)
    decision = domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), case, by_id(*slots), NOW)
    assert names(decision.case_events) == ["SlotConfirmed"]


def test_a_slot_is_confirmed_only_if_it_was_proposed_and_is_still_free() -> None:
    case, slots = proposed()
    stranger = opened(at=time(16))[0]
    with pytest.raises(CommandRejected, match="was not proposed"):
        domain.confirm(ConfirmSlot(CASE_ID, stranger.slot_id, APPOINTMENT_ID), case, by_id(*slots, stranger), NOW)
    taken = fold_slot([SlotBooked(slot_id=slots[0].slot_id, case_id=OTHER_CASE, appointment_id=uuid.uuid4())],
                      slots[0])
    assert taken is not None
    with pytest.raises(CommandRejected) as refused:
        domain.confirm(ConfirmSlot(CASE_ID, taken.slot_id, APPOINTMENT_ID), case, by_id(taken, slots[1]), NOW)
    assert refused.value.details == [f"slot {taken.slot_id} is already booked"]
    nothing = accepted()
    with pytest.raises(CommandRejected, match="propose slots first"):
        domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), nothing, by_id(*slots), NOW)


def test_an_expired_hold_can_still_be_confirmed_unless_another_case_holds_the_slot_now() -> None:
    case, slots = proposed()
    later = NOW + HOLD + timedelta(hours=1)
    decision = domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), case, by_id(*slots), later)
    assert names(decision.case_events) == ["SlotConfirmed", "AppointmentSlipIssued"]
    held_elsewhere = fold_slot([SlotHeld(slot_id=slots[0].slot_id, case_id=OTHER_CASE,
                                         hold_expires_at=later + HOLD)], slots[0])
    assert held_elsewhere is not None
    with pytest.raises(CommandRejected, match="cannot be booked"):
        domain.confirm(ConfirmSlot(CASE_ID, slots[0].slot_id, APPOINTMENT_ID), case, by_id(held_elsewhere), later)


def test_a_case_is_confirmed_once() -> None:
    case, slots = booked()
    with pytest.raises(CommandRejected) as refused:
        domain.confirm(ConfirmSlot(CASE_ID, slots[1].slot_id, uuid.uuid4()), case, by_id(*slots), NOW)
    assert refused.value.code == "already_booked"


# --- after confirmation ------------------------------------------------------------------------------

def test_an_in_person_consultation_is_completed_only_once_it_has_started_and_after_the_fee_is_paid() -> None:
    case, _ = booked(Mode.IN_PERSON)
    command = CompleteConsultation(CASE_ID, APPOINTMENT_ID)
    start = case.appointment.start if case.appointment else None
    assert start == on_day(9)
    with pytest.raises(CommandRejected) as early:
        domain.complete(command, case, NOW)
    assert early.value.code == "not_ready"
    assert early.value.details == [f"consultation_start:{start.isoformat()}", "fee_paid"]
    with pytest.raises(CommandRejected) as same_day_before_start:
        domain.complete(command, case, on_day(9) - timedelta(minutes=1))
    assert same_day_before_start.value.details == [f"consultation_start:{start.isoformat()}", "fee_paid"]
    with pytest.raises(CommandRejected) as unpaid:
        domain.complete(command, case, on_day())
    assert unpaid.value.details == ["fee_paid"]
    paid = fold([FeePaymentRecorded(case_id=CASE_ID, invoice_id=uuid.uuid4(), amount=33_000, captured_at=on_day(9))],
                case)
    events = domain.complete(command, paid, on_day())
    assert events == [ConsultationCompleted(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, mode=Mode.IN_PERSON,
                                            department="cardiology", physician_id="dr-sato", completed_at=on_day())]
    done = fold(events, paid)
    assert done.status is domain.CaseStatus.COMPLETED
    with pytest.raises(CommandRejected, match="the case is completed"):
        domain.complete(command, done, on_day())


def test_an_online_consultation_is_not_completed_and_so_not_charged_before_its_start() -> None:
    case, _ = booked(Mode.ONLINE)
    registered = fold(domain.register_online_booking(RegisterOnlineBooking(CASE_ID, APPOINTMENT_ID, "CL-123"), case),
                      case)
    before_start = on_day(9) - timedelta(minutes=1)
    with pytest.raises(CommandRejected) as early:
        domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), registered, before_start)
    assert early.value.details == [f"consultation_start:{on_day(9).isoformat()}"]
    assert names(domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), registered, on_day(9))) == [
        "ConsultationCompleted"]


def test_an_online_consultation_is_completed_only_once_booked_on_clinics() -> None:
    case, _ = booked(Mode.ONLINE)
    with pytest.raises(CommandRejected) as refused:
        domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), case, on_day())
    assert refused.value.details == ["online_booking_registered"]
    events = domain.register_online_booking(RegisterOnlineBooking(CASE_ID, APPOINTMENT_ID, "CL-123"), case)
    assert events == [OnlineBookingRegistered(case_id=CASE_ID, appointment_id=APPOINTMENT_ID,
                                              clinics_booking_ref="CL-123")]
    registered = fold(events, case)
    with pytest.raises(CommandRejected, match="already registered"):
        domain.register_online_booking(RegisterOnlineBooking(CASE_ID, APPOINTMENT_ID, "CL-123"), registered)
    assert names(domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), registered, on_day())) == [
        "ConsultationCompleted"]


def test_online_booking_and_slip_belong_to_their_mode() -> None:
    in_person, _ = booked(Mode.IN_PERSON)
    with pytest.raises(CommandRejected, match="not booked on CLINICS"):
        domain.register_online_booking(RegisterOnlineBooking(CASE_ID, APPOINTMENT_ID, "CL-1"), in_person)
    assert names(domain.issue_slip(IssueAppointmentSlip(CASE_ID, APPOINTMENT_ID), in_person, NOW)) == [
        "AppointmentSlipIssued"]
    online, _ = booked(Mode.ONLINE)
    with pytest.raises(CommandRejected, match="no appointment slip"):
        domain.issue_slip(IssueAppointmentSlip(CASE_ID, APPOINTMENT_ID), online, NOW)


def test_rescheduling_moves_the_appointment_frees_the_previous_slot_and_needs_a_new_online_booking() -> None:
    case, slots = booked(Mode.ONLINE)
    case = fold([OnlineBookingRegistered(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, clinics_booking_ref="C1")],
                case)
    new_slot = opened(day=date(2026, 12, 10), physician="dr-ito")[0]
    command = RescheduleAppointment(CASE_ID, APPOINTMENT_ID, new_slot.slot_id, RescheduleReason.PATIENT_REQUEST)
    decision = domain.reschedule(command, case, by_id(slots[0], new_slot), NOW)
    assert decision.case_events == [AppointmentRescheduled(
        case_id=CASE_ID, appointment_id=APPOINTMENT_ID, previous_slot_id=slots[0].slot_id, slot_id=new_slot.slot_id,
        start=new_slot.start, end=new_slot.end, physician_id="dr-ito", reason=RescheduleReason.PATIENT_REQUEST)]
    assert decision.slot_events == {
        slots[0].slot_id: [SlotFreed(slot_id=slots[0].slot_id, case_id=CASE_ID, appointment_id=APPOINTMENT_ID,
                                     reason=SlotFreeReason.RESCHEDULED)],
        new_slot.slot_id: [SlotBooked(slot_id=new_slot.slot_id, case_id=CASE_ID, appointment_id=APPOINTMENT_ID)],
    }
    after, after_slots = apply(decision, case, by_id(slots[0], new_slot))
    assert after_slots[slots[0].slot_id].status is domain.SlotStatus.OPEN  # type: ignore[union-attr]
    assert after.appointment is not None
    assert after.appointment.clinics_booking_ref is None
    with pytest.raises(CommandRejected) as refused:
        domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), after, on_day(day=date(2026, 12, 10)))
    assert refused.value.details == ["online_booking_registered"]


def test_an_in_person_reschedule_issues_a_new_slip() -> None:
    case, slots = booked(Mode.IN_PERSON)
    new_slot = opened(day=date(2026, 12, 10))[0]
    command = RescheduleAppointment(CASE_ID, APPOINTMENT_ID, new_slot.slot_id, RescheduleReason.PHYSICIAN_UNAVAILABLE)
    assert names(domain.reschedule(command, case, by_id(slots[0], new_slot), NOW).case_events) == [
        "AppointmentRescheduled", "AppointmentSlipIssued"]
    with pytest.raises(CommandRejected, match="already in slot"):
        domain.reschedule(RescheduleAppointment(CASE_ID, APPOINTMENT_ID, slots[0].slot_id,
                                                RescheduleReason.OTHER), case, by_id(slots[0]), NOW)


def test_cancelling_frees_the_slot_forgets_the_fee_and_lets_the_desk_propose_again() -> None:
    case, slots = booked()
    case = fold([FeePaymentRecorded(case_id=CASE_ID, invoice_id=uuid.uuid4(), amount=33_000, captured_at=NOW)], case)
    command = CancelAppointment(CASE_ID, APPOINTMENT_ID, CancellationReason.PATIENT_UNWELL, CancelledBy.PATIENT)
    decision = domain.cancel(command, case)
    assert decision.case_events == [AppointmentCancelled(
        case_id=CASE_ID, appointment_id=APPOINTMENT_ID, slot_id=slots[0].slot_id,
        reason=CancellationReason.PATIENT_UNWELL, cancelled_by=CancelledBy.PATIENT)]
    assert names(decision.slot_events[slots[0].slot_id]) == ["SlotFreed"]
    after, after_slots = apply(decision, case, by_id(*slots))
    assert after.status is domain.CaseStatus.CANCELLED
    assert not after.fee_paid
    again = domain.propose(ProposeSlots(CASE_ID, (slots[0].slot_id,)), after, after_slots, NOW, HOLD)
    assert names(again.case_events) == ["SlotsProposed"]
    with pytest.raises(CommandRejected, match="the appointment is cancelled"):
        domain.cancel(command, after)


@pytest.mark.parametrize(("by", "reason"), [(CancelledBy.PATIENT, CancellationReason.PHYSICIAN_UNAVAILABLE),
                                            (CancelledBy.HOSPITAL, CancellationReason.PATIENT_UNWELL)])
def test_a_cancellation_reason_must_fit_who_cancels(by: CancelledBy, reason: CancellationReason) -> None:
    case, _ = booked()
    with pytest.raises(InvalidCommand) as refused:
        domain.cancel(CancelAppointment(CASE_ID, APPOINTMENT_ID, reason, by), case)
    assert refused.value.status_code == 422


def test_a_no_show_is_recorded_only_once_the_appointment_has_started() -> None:
    case, slots = booked()
    command = RecordNoShow(CASE_ID, APPOINTMENT_ID)
    with pytest.raises(CommandRejected, match="can only be recorded after that"):
        domain.record_no_show(command, case, slots[0].start - timedelta(minutes=1))
    events = domain.record_no_show(command, case, slots[0].start + timedelta(minutes=30))
    assert events == [PatientNoShow(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, slot_id=slots[0].slot_id,
                                    recorded_at=slots[0].start + timedelta(minutes=30))]
    assert fold(events, case).status is domain.CaseStatus.NO_SHOW


def test_a_withdrawal_cancels_the_open_appointment_and_frees_its_slot() -> None:
    case, slots = booked()
    decision = domain.record_withdrawal(RecordWithdrawal(CASE_ID, WithdrawalReason.PATIENT_REQUEST), case,
                                        by_id(*slots))
    assert decision.case_events == [
        AppointmentCancelled(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, slot_id=slots[0].slot_id,
                             reason=CancellationReason.CASE_WITHDRAWN, cancelled_by=CancelledBy.HOSPITAL),
        CaseWithdrawalRecorded(case_id=CASE_ID, reason=WithdrawalReason.PATIENT_REQUEST),
    ]
    assert names(decision.slot_events[slots[0].slot_id]) == ["SlotFreed"]
    after = fold(decision.case_events, case)
    assert after.status is domain.CaseStatus.WITHDRAWN
    assert domain.record_withdrawal(RecordWithdrawal(CASE_ID, WithdrawalReason.OTHER), after, {}).case_events == []


def test_a_withdrawal_during_proposals_releases_the_holds() -> None:
    case, slots = proposed()
    decision = domain.record_withdrawal(RecordWithdrawal(CASE_ID, WithdrawalReason.NO_RESPONSE), case, by_id(*slots))
    assert names(decision.case_events) == ["CaseWithdrawalRecorded"]
    assert {slot_id: names(events) for slot_id, events in decision.slot_events.items()} == {
        slot.slot_id: ["SlotHoldReleased"] for slot in slots}


def test_a_late_payment_for_a_cancelled_appointment_does_not_pay_for_the_next_one() -> None:
    case, slots = booked()
    cancelled = fold(domain.cancel(CancelAppointment(CASE_ID, APPOINTMENT_ID, CancellationReason.PATIENT_REQUEST,
                                                     CancelledBy.PATIENT), case).case_events, case)
    reproposed = fold(domain.propose(ProposeSlots(CASE_ID, (slots[1].slot_id,)), cancelled, by_id(slots[1]), NOW,
                                     HOLD).case_events, cancelled)
    next_appointment = uuid.uuid4()
    rebooked = fold(domain.confirm(ConfirmSlot(CASE_ID, slots[1].slot_id, next_appointment), reproposed,
                                   by_id(slots[1]), NOW).case_events, reproposed)
    stale = domain.record_fee_payment(RecordFeePayment(CASE_ID, uuid.uuid4(), 33_000, NOW, APPOINTMENT_ID), rebooked)
    assert not fold(stale, rebooked).fee_paid
    paid = domain.record_fee_payment(RecordFeePayment(CASE_ID, uuid.uuid4(), 33_000, NOW, next_appointment), rebooked)
    assert fold(paid, rebooked).fee_paid


def test_commands_on_a_superseded_appointment_are_refused() -> None:
    case, slots = booked()
    cancelled = fold(domain.cancel(CancelAppointment(CASE_ID, APPOINTMENT_ID, CancellationReason.PATIENT_REQUEST,
                                                     CancelledBy.PATIENT), case).case_events, case)
    reproposed = fold(domain.propose(ProposeSlots(CASE_ID, (slots[1].slot_id,)), cancelled, by_id(slots[1]), NOW,
                                     HOLD).case_events, cancelled)
    rebooked = fold(domain.confirm(ConfirmSlot(CASE_ID, slots[1].slot_id, uuid.uuid4()), reproposed,
                                   by_id(slots[1]), NOW).case_events, reproposed)
    with pytest.raises(CommandRejected) as refused:
        domain.record_no_show(RecordNoShow(CASE_ID, APPOINTMENT_ID), rebooked, on_day())
    assert refused.value.code == "appointment_superseded"


def test_a_final_case_refuses_further_appointment_commands() -> None:
    case, _ = booked()
    done = fold([PatientNoShow(case_id=CASE_ID, appointment_id=APPOINTMENT_ID, slot_id=uuid.uuid4(),
                               recorded_at=on_day())], case)
    with pytest.raises(CommandRejected, match="the case is no_show"):
        domain.cancel(CancelAppointment(CASE_ID, APPOINTMENT_ID, CancellationReason.OTHER, CancelledBy.PATIENT), done)
    with pytest.raises(CommandRejected, match="the case is no_show"):
        domain.complete(CompleteConsultation(CASE_ID, APPOINTMENT_ID), done, on_day())
