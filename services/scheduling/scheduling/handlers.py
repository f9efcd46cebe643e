"""One handler per scheduling command, and the reactions to other services' events
(<effect>_when_<event>). Commands that touch slots write the case's stream and every slot stream they
change in ONE transaction, each at the version it was loaded at: both or neither are written, and a
slot confirmed at the same moment by another desk makes this append fail rather than double-book."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from eventkit.aggregate import AggregateRepository
from eventkit.business_calendar import BusinessCalendar
from eventkit.clock import Clock
from eventkit.db import Conn
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import ConcurrencyError, EventStore
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
from scheduling.store import (
    CASE_STREAM,
    SLOT_STREAM,
    case_repository,
    lock_physician_schedule,
    physician_slot_times,
    slot_repository,
)

ATTEMPTS = 10

CaseDecision = Callable[[domain.CaseSchedule, Mapping[UUID, domain.Slot | None]], domain.Decision]


@dataclass(frozen=True)
class OpenedSlots:
    recorded: list[RecordedEvent]
    plan: domain.SlotPlan


@dataclass
class SchedulingHandlers:
    store: EventStore
    calendar: BusinessCalendar
    clock: Clock
    hold_for: timedelta
    booking_horizon: timedelta

    @property
    def cases(self) -> AggregateRepository[domain.CaseSchedule]:
        return case_repository(self.store)

    @property
    def slots(self) -> AggregateRepository[domain.Slot | None]:
        return slot_repository(self.store)

    def now(self) -> datetime:
        return self.clock()

    async def open_slots(self, command: OpenSlots, context: CommandContext) -> OpenedSlots:
        now = self.now()
        async with self.store.transaction() as conn:
            await lock_physician_schedule(conn, command.physician_id)
            existing = await physician_slot_times(conn, command.physician_id, now - timedelta(days=1),
                                                  now + self.booking_horizon + timedelta(days=1))
            plan = domain.open_slots(command, self.calendar, now, self.booking_horizon, existing, uuid4)
            recorded: list[RecordedEvent] = []
            for opened in plan.opened:
                recorded += await self.store.append(self.slots.stream_id(opened.slot_id), SLOT_STREAM, 0, [opened],
                                                    context, conn=conn)
        return OpenedSlots(recorded=recorded, plan=plan)

    async def propose_slots(self, command: ProposeSlots, context: CommandContext) -> list[RecordedEvent]:
        return await self._decide(
            command.case_id, lambda case: (*command.slot_ids, *case.candidate_slot_ids),
            lambda case, slots: domain.propose(command, case, slots, self.now(), self.hold_for), context)

    async def confirm_slot(self, command: ConfirmSlot, context: CommandContext) -> list[RecordedEvent]:
        return await self._decide(
            command.case_id, lambda case: (command.slot_id, *case.candidate_slot_ids),
            lambda case, slots: domain.confirm(command, case, slots, self.now()), context)

    async def reschedule_appointment(self, command: RescheduleAppointment,
                                     context: CommandContext) -> list[RecordedEvent]:
        return await self._decide(
            command.case_id, lambda case: (command.slot_id, *_appointment_slot(case)),
            lambda case, slots: domain.reschedule(command, case, slots, self.now()), context)

    async def cancel_appointment(self, command: CancelAppointment, context: CommandContext) -> list[RecordedEvent]:
        return await self._decide(command.case_id, _appointment_slot,
                                  lambda case, _: domain.cancel(command, case), context)

    async def issue_appointment_slip(self, command: IssueAppointmentSlip,
                                     context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, lambda case: domain.issue_slip(command, case, self.now()),
                                        context)

    async def register_online_booking(self, command: RegisterOnlineBooking,
                                      context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id,
                                        lambda case: domain.register_online_booking(command, case), context)

    async def complete_consultation(self, command: CompleteConsultation,
                                    context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, lambda case: domain.complete(command, case, self.now()),
                                        context)

    async def record_no_show(self, command: RecordNoShow, context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id,
                                        lambda case: domain.record_no_show(command, case, self.now()), context)

    # --- reactions to other services' events (run inside the consumer's inbox transaction) ---------

    async def start_scheduling_when_case_accepted(self, command: StartScheduling, context: CommandContext,
                                                  conn: Conn) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, lambda case: domain.start_scheduling(command, case),
                                        context, conn=conn)

    async def record_payment_when_payment_captured(self, command: RecordFeePayment, context: CommandContext,
                                                   conn: Conn) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, lambda case: domain.record_fee_payment(command, case),
                                        context, conn=conn)

    async def cancel_appointment_when_case_withdrawn(self, command: RecordWithdrawal, context: CommandContext,
                                                     conn: Conn) -> list[RecordedEvent]:
        return await self._decide(
            command.case_id, lambda case: (*case.candidate_slot_ids, *_appointment_slot(case)),
            lambda case, slots: domain.record_withdrawal(command, case, slots), context, conn=conn)

    # --- the case and its slots in one transaction --------------------------------------------------

    async def _decide(self, case_id: UUID, slot_ids_of: Callable[[domain.CaseSchedule], Iterable[UUID]],
                      decide: CaseDecision, context: CommandContext, *,
                      conn: Conn | None = None) -> list[RecordedEvent]:
        """Load the case and the slots it needs, decide, append every stream at its loaded version.

        A concurrent append to any of them (two desks booking one slot) fails the whole transaction; it
        is decided again from fresh state, so the loser gets the domain's reason (409), not a retry
        message. Inside a caller's transaction (`conn`), the caller retries instead.
        """
        attempts = 1 if conn is not None else ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                async with self.store.transaction(conn) as tx:
                    return await self._decide_once(tx, case_id, slot_ids_of, decide, context)
            except (ConcurrencyError, asyncpg.DeadlockDetectedError):
                if attempt == attempts:
                    raise
                # Jitter, so that writers who collided do not collide again in lockstep.
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311
        raise AssertionError("unreachable")

    async def _decide_once(self, conn: Conn, case_id: UUID,
                           slot_ids_of: Callable[[domain.CaseSchedule], Iterable[UUID]], decide: CaseDecision,
                           context: CommandContext) -> list[RecordedEvent]:
        case, case_version = await self.cases.load(case_id, conn=conn)
        # Slots in a fixed order, so two transactions touching the same slots wait for each other
        # instead of deadlocking.
        slot_ids = sorted(set(slot_ids_of(case)))
        slots: dict[UUID, domain.Slot | None] = {}
        versions: dict[UUID, int] = {}
        for slot_id in slot_ids:
            slots[slot_id], versions[slot_id] = await self.slots.load(slot_id, conn=conn)
        decision = decide(case, slots)
        recorded = await self.store.append(self.cases.stream_id(case_id), CASE_STREAM, case_version,
                                           decision.case_events, context, conn=conn)
        for slot_id in sorted(decision.slot_events):
            events: list[Event] = decision.slot_events[slot_id]
            recorded += await self.store.append(self.slots.stream_id(slot_id), SLOT_STREAM, versions[slot_id], events,
                                                context, conn=conn)
        return recorded


def _appointment_slot(case: domain.CaseSchedule) -> tuple[UUID, ...]:
    return (case.appointment.slot_id,) if case.appointment is not None else ()
