"""Scheduling's aggregates: decide(command, state) -> events, evolve(state, event) -> state. Pure.

Two aggregates, one stream each:
- Slot (stream per slot): opened, held for a case while proposed, booked, freed. Booking a slot is an
  append at the slot's expected version, so two desks confirming the same slot cannot both win.
- CaseSchedule (stream per case): from CaseAccepted through proposals, the appointment (confirmed,
  slip, online booking, reschedule, cancel) to completion or no-show, plus the fee payment billing
  reports. Commands that touch slots decide a `Decision` over the case and the slots at once; the
  handler appends all of it in one transaction.

Holds expire lazily: a hold past its expiry counts as free against the clock the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from uuid import UUID

from eventkit.business_calendar import RECEPTION_CLOSES, RECEPTION_OPENS, BusinessCalendar, Closure, tokyo_datetime
from eventkit.clock import TOKYO, tokyo_date
from eventkit.errors import CommandRejected, InvalidCommand, NotFound
from eventkit.events import Event
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
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode
from secondopinion_contracts.events.scheduling import (
    AppointmentCancelled,
    AppointmentRescheduled,
    AppointmentSlipIssued,
    CandidateSlot,
    ConsultationCompleted,
    OnlineBookingRegistered,
    PatientNoShow,
    SlotConfirmed,
    SlotsProposed,
)

MAX_SLOTS_PER_REQUEST = 500

# Who may cancel for which coded reason: a patient does not cancel because the physician is away.
CANCELLATION_REASONS_BY: Mapping[CancelledBy, frozenset[CancellationReason]] = {
    CancelledBy.PATIENT: frozenset({CancellationReason.PATIENT_REQUEST, CancellationReason.PATIENT_UNWELL,
                                    CancellationReason.OTHER}),
    CancelledBy.HOSPITAL: frozenset({CancellationReason.PHYSICIAN_UNAVAILABLE, CancellationReason.HOSPITAL_CLOSURE,
                                     CancellationReason.CASE_WITHDRAWN, CancellationReason.OTHER}),
}


# --- Slot -------------------------------------------------------------------------------------------

class SlotStatus(StrEnum):
    OPEN = "open"
    BOOKED = "booked"


@dataclass(frozen=True)
class Hold:
    case_id: UUID
    expires_at: datetime

    def live_at(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class Slot:
    slot_id: UUID
    department: str
    physician_id: str
    start: datetime
    end: datetime
    status: SlotStatus = SlotStatus.OPEN
    hold: Hold | None = None
    booked_for: UUID | None = None
    appointment_id: UUID | None = None

    def live_hold_for_another(self, case_id: UUID, now: datetime) -> Hold | None:
        if self.hold is not None and self.hold.case_id != case_id and self.hold.live_at(now):
            return self.hold
        return None

    def held_by(self, case_id: UUID) -> bool:
        """Held for the case, expired or not (an expired hold is still the case's to release)."""
        return self.hold is not None and self.hold.case_id == case_id


def evolve_slot(slot: Slot | None, event: Event) -> Slot | None:
    if isinstance(event, SlotOpened):
        return Slot(slot_id=event.slot_id, department=event.department, physician_id=event.physician_id,
                    start=event.start, end=event.end)
    if slot is None:
        return None
    match event:
        case SlotHeld():
            return replace(slot, hold=Hold(event.case_id, event.hold_expires_at))
        case SlotHoldReleased():
            return replace(slot, hold=None) if slot.held_by(event.case_id) else slot
        case SlotBooked():
            return replace(slot, status=SlotStatus.BOOKED, hold=None, booked_for=event.case_id,
                           appointment_id=event.appointment_id)
        case SlotFreed():
            return replace(slot, status=SlotStatus.OPEN, booked_for=None, appointment_id=None)
    return slot


@dataclass(frozen=True)
class SlotPlan:
    opened: list[SlotOpened]
    skipped: list[Closure]


def open_slots(command: OpenSlots, calendar: BusinessCalendar, now: datetime, horizon: timedelta,
               existing: Sequence[tuple[datetime, datetime]], new_id: Callable[[], UUID]) -> SlotPlan:
    """Slots for every business day of the range at each start time; closed days are skipped and said so.

    Whatever breaks the calendar or reception hours refuses the whole request (422) with every reason;
    overlapping the physician's existing slots is a conflict with the schedule as it stands (409).
    """
    duration = timedelta(minutes=command.duration_minutes)
    problems: list[str] = []
    if command.last_day < command.first_day:
        raise InvalidCommand("the range ends before it starts", details=[f"to {command.last_day} < from "
                                                                         f"{command.first_day}"])
    times = sorted(set(command.start_times))
    for at in times:
        ends = tokyo_datetime(command.first_day, at) + duration
        if at < RECEPTION_OPENS:
            problems.append(f"{at:%H:%M} is before reception opens at {RECEPTION_OPENS:%H:%M}")
        if ends.time() > RECEPTION_CLOSES or ends.date() != command.first_day:
            problems.append(f"a {command.duration_minutes}-minute consultation at {at:%H:%M} ends at {ends:%H:%M}, "
                            f"after reception closes at {RECEPTION_CLOSES:%H:%M}")
    for earlier, later in pairwise(times):
        if tokyo_datetime(command.first_day, earlier) + duration > tokyo_datetime(command.first_day, later):
            problems.append(f"the {earlier:%H:%M} and {later:%H:%M} slots overlap with "
                            f"{command.duration_minutes}-minute consultations")
    if problems:
        raise InvalidCommand("the slots are outside reception hours or overlap", details=problems)

    skipped = calendar.closures(command.first_day, command.last_day)
    days = calendar.business_days(command.first_day, command.last_day)
    if not days:
        raise InvalidCommand(f"there is no business day from {command.first_day} to {command.last_day}",
                             details=[closure.describe() for closure in skipped])
    if len(days) * len(times) > MAX_SLOTS_PER_REQUEST:
        raise InvalidCommand(f"at most {MAX_SLOTS_PER_REQUEST} slots can be opened at once",
                             details=[f"{len(days)} business days x {len(times)} start times"])
    planned: list[tuple[datetime, datetime]] = []
    for day in days:
        for at in times:
            start = tokyo_datetime(day, at)
            end = start + duration
            problems += calendar.consultation_problems(start, end)
            if start <= now:
                problems.append(f"{start:%Y-%m-%d %H:%M} is in the past")
            elif start > now + horizon:
                problems.append(f"{start:%Y-%m-%d} is beyond the booking horizon of {horizon.days} days "
                                "(national holidays further ahead are not announced yet)")
            planned.append((start.astimezone(UTC), end.astimezone(UTC)))
    if problems:
        raise InvalidCommand("the slots cannot be opened", details=problems)

    clashes = [f"{start.astimezone(TOKYO):%Y-%m-%d %H:%M} overlaps an existing slot of {command.physician_id}"
               for start, end in planned
               if any(start < other_end and other_start < end for other_start, other_end in existing)]
    if clashes:
        raise CommandRejected("the physician already has slots at these times", code="slot_overlap",
                              details=clashes)
    opened = [SlotOpened(slot_id=new_id(), department=command.department, physician_id=command.physician_id,
                         start=start, end=end) for start, end in planned]
    return SlotPlan(opened=opened, skipped=skipped)


# --- CaseSchedule -----------------------------------------------------------------------------------

class CaseStatus(StrEnum):
    NEW = "new"
    AWAITING_PROPOSALS = "awaiting_proposals"
    PROPOSED = "proposed"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    WITHDRAWN = "withdrawn"


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# After a cancellation the desk may arrange another date; completion, no-show and withdrawal are final.
PROPOSABLE = (CaseStatus.AWAITING_PROPOSALS, CaseStatus.PROPOSED, CaseStatus.CANCELLED)
FINAL = (CaseStatus.COMPLETED, CaseStatus.NO_SHOW, CaseStatus.WITHDRAWN)


@dataclass(frozen=True)
class Appointment:
    appointment_id: UUID
    slot_id: UUID
    start: datetime
    end: datetime
    physician_id: str
    status: AppointmentStatus = AppointmentStatus.BOOKED
    slip_issued_on: date | None = None
    clinics_booking_ref: str | None = None


@dataclass(frozen=True)
class CaseSchedule:
    status: CaseStatus = CaseStatus.NEW
    department: str = ""
    mode: Mode | None = None
    candidates: tuple[CandidateSlot, ...] = ()
    hold_expires_at: datetime | None = None
    appointment: Appointment | None = None
    fee_paid: bool = False
    paid_invoices: frozenset[UUID] = field(default_factory=frozenset)

    @property
    def candidate_slot_ids(self) -> tuple[UUID, ...]:
        return tuple(candidate.slot_id for candidate in self.candidates)


@dataclass(frozen=True)
class Decision:
    """What one command records: events of the case's stream and of each slot stream it touches."""

    case_events: list[Event]
    slot_events: dict[UUID, list[Event]] = field(default_factory=dict)


def _require_scheduling(case: CaseSchedule, what: str) -> Mode:
    if case.status is CaseStatus.NEW or case.mode is None:
        raise NotFound("the case is not accepted for scheduling (no CaseAccepted received for it)")
    if case.status in FINAL:
        raise CommandRejected(f"cannot {what}: the case is {case.status.value}", code=f"case_{case.status.value}")
    return case.mode


def _slot(slots: Mapping[UUID, Slot | None], slot_id: UUID) -> Slot:
    slot = slots.get(slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id}")
    return slot


def _bookable_problems(slot: Slot, case_id: UUID, department: str, now: datetime) -> list[str]:
    """Why `slot` cannot be offered to or booked for the case (empty when it can)."""
    problems: list[str] = []
    if slot.department != department:
        problems.append(f"slot {slot.slot_id} is in {slot.department}, the case is for {department}")
    if slot.status is SlotStatus.BOOKED:
        problems.append(f"slot {slot.slot_id} is already booked")
    elif (hold := slot.live_hold_for_another(case_id, now)) is not None:
        problems.append(f"slot {slot.slot_id} is held for another case until {hold.expires_at.isoformat()}")
    if slot.start <= now:
        problems.append(f"slot {slot.slot_id} starts at {slot.start.isoformat()}, which has passed")
    return problems


def _candidate(slot: Slot) -> CandidateSlot:
    return CandidateSlot(slot_id=slot.slot_id, start=slot.start, end=slot.end, physician_id=slot.physician_id)


def _release_holds(case_id: UUID, slot_ids: Sequence[UUID], slots: Mapping[UUID, Slot | None],
                   reason: HoldReleaseReason) -> dict[UUID, list[Event]]:
    released: dict[UUID, list[Event]] = {}
    for slot_id in slot_ids:
        slot = slots.get(slot_id)
        if slot is not None and slot.status is SlotStatus.OPEN and slot.held_by(case_id):
            released[slot_id] = [SlotHoldReleased(slot_id=slot_id, case_id=case_id, reason=reason)]
    return released


def start_scheduling(command: StartScheduling, case: CaseSchedule) -> list[Event]:
    """CaseAccepted: the case now waits for dates. A repeat, or one after a withdrawal, changes nothing."""
    if case.status is not CaseStatus.NEW:
        return []
    return [SchedulingStarted(case_id=command.case_id, department=command.department, mode=command.mode)]


def record_fee_payment(command: RecordFeePayment, case: CaseSchedule) -> list[Event]:
    """PaymentCaptured: remembered even before the case or its appointment is known here."""
    if command.invoice_id in case.paid_invoices:
        return []
    return [FeePaymentRecorded(case_id=command.case_id, invoice_id=command.invoice_id, amount=command.amount,
                               captured_at=command.captured_at, appointment_id=command.appointment_id)]


def record_withdrawal(command: RecordWithdrawal, case: CaseSchedule, slots: Mapping[UUID, Slot | None]) -> Decision:
    """CaseWithdrawn: cancel an open appointment (freeing its slot), release holds, close the case."""
    if case.status in FINAL:
        return Decision([])
    events: list[Event] = []
    slot_events: dict[UUID, list[Event]] = {}
    appointment = case.appointment
    if case.status is CaseStatus.BOOKED and appointment is not None:
        events.append(AppointmentCancelled(case_id=command.case_id, appointment_id=appointment.appointment_id,
                                           slot_id=appointment.slot_id, reason=CancellationReason.CASE_WITHDRAWN,
                                           cancelled_by=CancelledBy.HOSPITAL))
        slot_events[appointment.slot_id] = [SlotFreed(slot_id=appointment.slot_id, case_id=command.case_id,
                                                      appointment_id=appointment.appointment_id,
                                                      reason=SlotFreeReason.CANCELLED)]
    if case.status is CaseStatus.PROPOSED:
        slot_events |= _release_holds(command.case_id, case.candidate_slot_ids, slots,
                                      HoldReleaseReason.CASE_WITHDRAWN)
    events.append(CaseWithdrawalRecorded(case_id=command.case_id, reason=command.reason))
    return Decision(events, slot_events)


def propose(command: ProposeSlots, case: CaseSchedule, slots: Mapping[UUID, Slot | None], now: datetime,
            hold_for: timedelta) -> Decision:
    mode = _require_scheduling(case, "propose dates")
    if case.status not in PROPOSABLE:
        assert case.appointment is not None
        raise CommandRejected(f"the case already has appointment {case.appointment.appointment_id}; "
                              "reschedule it instead", code="already_booked")
    if len(set(command.slot_ids)) != len(command.slot_ids) or not 1 <= len(command.slot_ids) <= 3:
        raise InvalidCommand("propose one to three different slots")
    offered = [_slot(slots, slot_id) for slot_id in command.slot_ids]
    problems = [problem for slot in offered for problem in _bookable_problems(slot, command.case_id,
                                                                                case.department, now)]
    if problems:
        raise CommandRejected("these slots cannot be proposed", code="slot_unavailable", details=problems)
    expires = now + hold_for
    events: list[Event] = [SlotsProposed(case_id=command.case_id, department=case.department, mode=mode,
                                         candidates=[_candidate(slot) for slot in offered], hold_expires_at=expires)]
    replaced = [slot_id for slot_id in case.candidate_slot_ids if slot_id not in command.slot_ids]
    slot_events = _release_holds(command.case_id, replaced, slots, HoldReleaseReason.PROPOSAL_REPLACED)
    for slot in offered:
        slot_events[slot.slot_id] = [SlotHeld(slot_id=slot.slot_id, case_id=command.case_id,
                                              hold_expires_at=expires)]
    return Decision(events, slot_events)


def confirm(command: ConfirmSlot, case: CaseSchedule, slots: Mapping[UUID, Slot | None], now: datetime) -> Decision:
    """The patient picked one of the proposed dates: book it, release the other holds."""
    mode = _require_scheduling(case, "confirm a date")
    if case.status is CaseStatus.BOOKED:
        assert case.appointment is not None
        raise CommandRejected(f"the case already has appointment {case.appointment.appointment_id}",
                              code="already_booked")
    if case.status is not CaseStatus.PROPOSED:
        raise CommandRejected("no candidate dates are proposed to the case; propose slots first",
                              code="nothing_proposed")
    if command.slot_id not in case.candidate_slot_ids:
        raise CommandRejected(f"slot {command.slot_id} was not proposed to this case; propose it first",
                              code="not_proposed")
    slot = _slot(slots, command.slot_id)
    problems = _bookable_problems(slot, command.case_id, case.department, now)
    if problems:
        raise CommandRejected(f"slot {command.slot_id} cannot be booked", code="slot_unavailable", details=problems)
    events: list[Event] = [SlotConfirmed(
        case_id=command.case_id, appointment_id=command.appointment_id, slot_id=slot.slot_id, start=slot.start,
        end=slot.end, department=case.department, physician_id=slot.physician_id, mode=mode)]
    if mode is Mode.IN_PERSON:
        events.append(AppointmentSlipIssued(case_id=command.case_id, appointment_id=command.appointment_id,
                                            issued_on=tokyo_date(now)))
    others = [slot_id for slot_id in case.candidate_slot_ids if slot_id != slot.slot_id]
    slot_events = _release_holds(command.case_id, others, slots, HoldReleaseReason.OTHER_SLOT_CONFIRMED)
    slot_events[slot.slot_id] = [SlotBooked(slot_id=slot.slot_id, case_id=command.case_id,
                                            appointment_id=command.appointment_id)]
    return Decision(events, slot_events)


def _current_booked(case: CaseSchedule, appointment_id: UUID, what: str) -> Appointment:
    _require_scheduling(case, what)
    appointment = case.appointment
    if appointment is None or appointment.appointment_id != appointment_id:
        raise CommandRejected(f"cannot {what}: appointment {appointment_id} is no longer the case's appointment",
                              code="appointment_superseded")
    if appointment.status is not AppointmentStatus.BOOKED:
        raise CommandRejected(f"cannot {what}: the appointment is {appointment.status.value}",
                              code=f"appointment_{appointment.status.value}")
    return appointment


def issue_slip(command: IssueAppointmentSlip, case: CaseSchedule, now: datetime) -> list[Event]:
    """Post the slip again (e.g. the patient lost it); the first is issued on confirmation."""
    _current_booked(case, command.appointment_id, "issue an appointment slip")
    if case.mode is not Mode.IN_PERSON:
        raise CommandRejected("online consultations have no appointment slip; the patient books on CLINICS",
                              code="online_consultation")
    return [AppointmentSlipIssued(case_id=command.case_id, appointment_id=command.appointment_id,
                                  issued_on=tokyo_date(now))]


def register_online_booking(command: RegisterOnlineBooking, case: CaseSchedule) -> list[Event]:
    appointment = _current_booked(case, command.appointment_id, "register an online booking")
    if case.mode is not Mode.ONLINE:
        raise CommandRejected("an in-person consultation is not booked on CLINICS", code="in_person_consultation")
    if appointment.clinics_booking_ref == command.clinics_booking_ref:
        raise CommandRejected(f"the CLINICS booking {command.clinics_booking_ref} is already registered",
                              code="already_registered")
    return [OnlineBookingRegistered(case_id=command.case_id, appointment_id=command.appointment_id,
                                    clinics_booking_ref=command.clinics_booking_ref)]


def reschedule(command: RescheduleAppointment, case: CaseSchedule, slots: Mapping[UUID, Slot | None],
               now: datetime) -> Decision:
    """Move the appointment to another slot; the previous one is freed. Online, the patient books again."""
    appointment = _current_booked(case, command.appointment_id, "reschedule")
    if command.slot_id == appointment.slot_id:
        raise CommandRejected(f"the appointment is already in slot {command.slot_id}", code="same_slot")
    slot = _slot(slots, command.slot_id)
    problems = _bookable_problems(slot, command.case_id, case.department, now)
    if problems:
        raise CommandRejected(f"slot {command.slot_id} cannot be booked", code="slot_unavailable", details=problems)
    events: list[Event] = [AppointmentRescheduled(
        case_id=command.case_id, appointment_id=appointment.appointment_id, previous_slot_id=appointment.slot_id,
        slot_id=slot.slot_id, start=slot.start, end=slot.end, physician_id=slot.physician_id, reason=command.reason)]
    if case.mode is Mode.IN_PERSON:
        events.append(AppointmentSlipIssued(case_id=command.case_id, appointment_id=appointment.appointment_id,
                                            issued_on=tokyo_date(now)))
    slot_events: dict[UUID, list[Event]] = {
        appointment.slot_id: [SlotFreed(slot_id=appointment.slot_id, case_id=command.case_id,
                                        appointment_id=appointment.appointment_id,
                                        reason=SlotFreeReason.RESCHEDULED)],
        slot.slot_id: [SlotBooked(slot_id=slot.slot_id, case_id=command.case_id,
                                  appointment_id=appointment.appointment_id)],
    }
    return Decision(events, slot_events)


def cancel(command: CancelAppointment, case: CaseSchedule) -> Decision:
    if command.reason not in CANCELLATION_REASONS_BY[command.cancelled_by]:
        allowed = sorted(reason.value for reason in CANCELLATION_REASONS_BY[command.cancelled_by])
        raise InvalidCommand(f"a cancellation by the {command.cancelled_by.value} cannot have reason "
                             f"{command.reason.value}", details=[f"allowed: {', '.join(allowed)}"])
    appointment = _current_booked(case, command.appointment_id, "cancel")
    events: list[Event] = [AppointmentCancelled(
        case_id=command.case_id, appointment_id=appointment.appointment_id, slot_id=appointment.slot_id,
        reason=command.reason, cancelled_by=command.cancelled_by)]
    slot_events: dict[UUID, list[Event]] = {appointment.slot_id: [SlotFreed(
        slot_id=appointment.slot_id, case_id=command.case_id, appointment_id=appointment.appointment_id,
        reason=SlotFreeReason.CANCELLED)]}
    return Decision(events, slot_events)


def complete(command: CompleteConsultation, case: CaseSchedule, now: datetime) -> list[Event]:
    """The consultation took place: not before the appointment's start (an online one is charged to the card
    on completion); online only once booked on CLINICS, in person only once the fee was paid at the counter
    (it is paid before the consultation)."""
    appointment = _current_booked(case, command.appointment_id, "complete the consultation")
    mode = case.mode
    assert mode is not None
    missing: list[str] = []
    if now < appointment.start:
        missing.append(f"consultation_start:{appointment.start.isoformat()}")
    if mode is Mode.ONLINE and appointment.clinics_booking_ref is None:
        missing.append("online_booking_registered")
    if mode is Mode.IN_PERSON and not case.fee_paid:
        missing.append("fee_paid")
    if missing:
        raise CommandRejected("the consultation cannot be completed yet: " + ", ".join(missing),
                              code="not_ready", details=missing)
    return [ConsultationCompleted(case_id=command.case_id, appointment_id=appointment.appointment_id, mode=mode,
                                  department=case.department, physician_id=appointment.physician_id,
                                  completed_at=now)]


def record_no_show(command: RecordNoShow, case: CaseSchedule, now: datetime) -> list[Event]:
    """The patient did not come: only once the appointment's start time has come."""
    appointment = _current_booked(case, command.appointment_id, "record a no-show")
    if now < appointment.start:
        raise CommandRejected(f"the appointment starts at {appointment.start.isoformat()}; a no-show can only be "
                              "recorded after that", code="not_started")
    return [PatientNoShow(case_id=command.case_id, appointment_id=appointment.appointment_id,
                          slot_id=appointment.slot_id, recorded_at=now)]


def evolve(case: CaseSchedule, event: Event) -> CaseSchedule:
    appointment = case.appointment
    match event:
        case SchedulingStarted():
            status = CaseStatus.AWAITING_PROPOSALS if case.status is CaseStatus.NEW else case.status
            return replace(case, status=status, department=event.department, mode=event.mode)
        case FeePaymentRecorded():
            # A payment naming an appointment that is no longer the case's (it was cancelled, then
            # another booked) pays for nothing now; one naming none is taken as for the case.
            current = appointment.appointment_id if appointment is not None else None
            for_current = event.appointment_id is None or current is None or event.appointment_id == current
            return replace(case, fee_paid=case.fee_paid or for_current,
                           paid_invoices=case.paid_invoices | {event.invoice_id})
        case CaseWithdrawalRecorded():
            return replace(case, status=CaseStatus.WITHDRAWN, candidates=(), hold_expires_at=None)
        case SlotsProposed():
            return replace(case, status=CaseStatus.PROPOSED, candidates=tuple(event.candidates),
                           hold_expires_at=event.hold_expires_at)
        case SlotConfirmed():
            return replace(case, status=CaseStatus.BOOKED, candidates=(), hold_expires_at=None,
                           appointment=Appointment(appointment_id=event.appointment_id, slot_id=event.slot_id,
                                                   start=event.start, end=event.end,
                                                   physician_id=event.physician_id))
    if appointment is None:
        return case
    match event:
        case AppointmentSlipIssued():
            return replace(case, appointment=replace(appointment, slip_issued_on=event.issued_on))
        case OnlineBookingRegistered():
            return replace(case, appointment=replace(appointment, clinics_booking_ref=event.clinics_booking_ref))
        case AppointmentRescheduled():
            # A new date needs a new slip (in person) or a new CLINICS booking (online).
            return replace(case, appointment=replace(
                appointment, slot_id=event.slot_id, start=event.start, end=event.end,
                physician_id=event.physician_id, slip_issued_on=None, clinics_booking_ref=None))
        case AppointmentCancelled():
            # Billing refunds a fee already paid; another appointment needs its own payment.
            return replace(case, status=CaseStatus.CANCELLED, fee_paid=False,
                           appointment=replace(appointment, status=AppointmentStatus.CANCELLED))
        case ConsultationCompleted():
            return replace(case, status=CaseStatus.COMPLETED,
                           appointment=replace(appointment, status=AppointmentStatus.COMPLETED))
        case PatientNoShow():
            return replace(case, status=CaseStatus.NO_SHOW,
                           appointment=replace(appointment, status=AppointmentStatus.NO_SHOW))
    return case
