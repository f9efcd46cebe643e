"""One handler per scheduling command, the desk's and those other services' events become (consumers.py): each
`(command, uow)` plus what bootstrap binds to it, with the table of command -> handler at the bottom.

Commands that touch slots write the case's stream and every slot stream they change in ONE unit of work, each at the
version it was loaded at: both or neither are written, and a slot confirmed at the same moment by another desk makes
the commit fail (and the command be decided again from fresh state) rather than double-book."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from eventkit.business_calendar import BusinessCalendar
from eventkit.clock import Clock
from eventkit.events import RecordedEvent
from eventkit.unit_of_work import Loaded, UnitOfWork
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
from scheduling.repository import CASES, SLOT_STREAM, SLOTS, PhysicianSchedules

CaseDecision = Callable[[domain.CaseSchedule, Mapping[UUID, domain.Slot | None]], domain.Decision]


@dataclass(frozen=True)
class OpenedSlots:
    recorded: list[RecordedEvent]
    plan: domain.SlotPlan


async def open_slots(command: OpenSlots, uow: UnitOfWork, *, calendar: BusinessCalendar, clock: Clock,
                     booking_horizon: timedelta, schedules: PhysicianSchedules) -> OpenedSlots:
    now = clock()
    existing = await schedules.taken(uow, command.physician_id, now - timedelta(days=1),
                                     now + booking_horizon + timedelta(days=1))
    plan = domain.open_slots(command, calendar, now, booking_horizon, existing, uuid4)
    for opened in plan.opened:
        uow.append(SLOTS.stream_id(opened.slot_id), SLOT_STREAM, 0, [opened])
    return OpenedSlots(recorded=await uow.commit(), plan=plan)


async def propose_slots(command: ProposeSlots, uow: UnitOfWork, *, clock: Clock,
                        hold_for: timedelta) -> list[RecordedEvent]:
    return await _decide(uow, command.case_id, lambda case: (*command.slot_ids, *case.candidate_slot_ids),
                         lambda case, slots: domain.propose(command, case, slots, clock(), hold_for))


async def confirm_slot(command: ConfirmSlot, uow: UnitOfWork, *, clock: Clock) -> list[RecordedEvent]:
    return await _decide(uow, command.case_id, lambda case: (command.slot_id, *case.candidate_slot_ids),
                         lambda case, slots: domain.confirm(command, case, slots, clock()))


async def reschedule_appointment(command: RescheduleAppointment, uow: UnitOfWork, *,
                                 clock: Clock) -> list[RecordedEvent]:
    return await _decide(uow, command.case_id, lambda case: (command.slot_id, *_appointment_slot(case)),
                         lambda case, slots: domain.reschedule(command, case, slots, clock()))


async def cancel_appointment(command: CancelAppointment, uow: UnitOfWork) -> list[RecordedEvent]:
    return await _decide(uow, command.case_id, _appointment_slot, lambda case, _: domain.cancel(command, case))


async def issue_appointment_slip(command: IssueAppointmentSlip, uow: UnitOfWork, *,
                                 clock: Clock) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.issue_slip(command, case, clock()))


async def register_online_booking(command: RegisterOnlineBooking, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.register_online_booking(command, case))


async def complete_consultation(command: CompleteConsultation, uow: UnitOfWork, *,
                                clock: Clock) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.complete(command, case, clock()))


async def record_no_show(command: RecordNoShow, uow: UnitOfWork, *, clock: Clock) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.record_no_show(command, case, clock()))


# --- what other services' events become (consumers.py) ---------------------------------------------------------

async def start_scheduling_when_case_accepted(command: StartScheduling, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.start_scheduling(command, case))


async def record_payment_when_payment_captured(command: RecordFeePayment, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, lambda case: domain.record_fee_payment(command, case))


async def cancel_appointment_when_case_withdrawn(command: RecordWithdrawal, uow: UnitOfWork) -> list[RecordedEvent]:
    return await _decide(uow, command.case_id, lambda case: (*case.candidate_slot_ids, *_appointment_slot(case)),
                         lambda case, slots: domain.record_withdrawal(command, case, slots))


# --- the case and its slots in one unit of work ------------------------------------------------------------------

async def _decide(uow: UnitOfWork, case_id: UUID, slot_ids_of: Callable[[domain.CaseSchedule], Iterable[UUID]],
                  decide: CaseDecision) -> list[RecordedEvent]:
    """Load the case and the slots it needs, decide, append every stream at its loaded version."""
    case = await uow.load(CASES, case_id)
    # Slots in a fixed order, so two transactions touching the same slots wait for each other instead of
    # deadlocking.
    slots: dict[UUID, Loaded[domain.Slot | None]] = {}
    for slot_id in sorted(set(slot_ids_of(case.state))):
        slots[slot_id] = await uow.load(SLOTS, slot_id)
    decision = decide(case.state, {slot_id: slot.state for slot_id, slot in slots.items()})
    uow.save(case, decision.case_events)
    for slot_id in sorted(decision.slot_events):
        uow.save(slots[slot_id], decision.slot_events[slot_id])
    return await uow.commit()


def _appointment_slot(case: domain.CaseSchedule) -> tuple[UUID, ...]:
    return (case.appointment.slot_id,) if case.appointment is not None else ()


HANDLERS: dict[type, Callable[..., Any]] = {
    OpenSlots: open_slots,
    ProposeSlots: propose_slots,
    ConfirmSlot: confirm_slot,
    RescheduleAppointment: reschedule_appointment,
    CancelAppointment: cancel_appointment,
    IssueAppointmentSlip: issue_appointment_slip,
    RegisterOnlineBooking: register_online_booking,
    CompleteConsultation: complete_consultation,
    RecordNoShow: record_no_show,
    StartScheduling: start_scheduling_when_case_accepted,
    RecordFeePayment: record_payment_when_payment_captured,
    RecordWithdrawal: cancel_appointment_when_case_withdrawn,
}
