"""Scheduling's handlers on fakes (an in-memory event store and unit of work): given the case's and its slots'
events, when a command (the desk's, or one another service's event becomes), then the events appended to each
stream and what the outbox would publish. The physicians' schedules are a fake too."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import pytest

from eventkit.errors import CommandRejected
from eventkit.events import Actor, CommandContext, RecordedEvent
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.unit_of_work import UnitOfWork, run_retrying
from scheduling.bootstrap import bind_handlers
from scheduling.commands import ConfirmSlot, OpenSlots, ProposeSlots, RecordWithdrawal, StartScheduling
from scheduling.events import CaseWithdrawalRecorded, SchedulingStarted, SlotHeld, SlotHoldReleased, SlotOpened
from scheduling.repository import CASE_STREAM, CASES, EVENT_TYPES, SLOT_STREAM, SLOTS
from scheduling.settings import SchedulingSettings
from secondopinion_contracts.codes import Mode, WithdrawalReason
from secondopinion_contracts.events.scheduling import SlotsProposed

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # Tuesday 1 Dec 2026, 10:00 in Tokyo
CONSULTATION = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
CASE_ID = uuid.uuid4()
SETTINGS = SchedulingSettings()


@dataclass
class FixedSchedules:
    """The times a physician's existing slots take, as a test says."""

    times: list[tuple[datetime, datetime]] = field(default_factory=list)

    async def taken(self, uow: UnitOfWork, physician_id: str, first: datetime,
                    last: datetime) -> list[tuple[datetime, datetime]]:
        return [(start, end) for start, end in self.times if start < last and end > first]


SCHEDULES = FixedSchedules()
HANDLERS = bind_handlers(SETTINGS, lambda: NOW, SCHEDULES)
CONTEXT = CommandContext(actor=Actor(id="coord-1", role="coordinator"), correlation_id=str(CASE_ID))
HOLD = timedelta(minutes=SETTINGS.hold_minutes)


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore("scheduling", EVENT_TYPES)


def open_slot(store: InMemoryEventStore, hours_later: int = 0) -> UUID:
    slot_id = uuid.uuid4()
    start = CONSULTATION + timedelta(hours=hours_later)
    store.given(SLOTS.stream_id(slot_id), SLOT_STREAM, [SlotOpened(
        slot_id=slot_id, department="cardiology", physician_id="dr-sato", start=start, end=start + timedelta(hours=1))])
    return slot_id


def accepted(store: InMemoryEventStore) -> None:
    store.given(CASES.stream_id(CASE_ID), CASE_STREAM,
                [SchedulingStarted(case_id=CASE_ID, department="cardiology", mode=Mode.IN_PERSON)])


async def handle(store: InMemoryEventStore, command: object) -> None:
    await HANDLERS[type(command)](command, InMemoryUnitOfWork(store, CONTEXT))


async def test_a_proposal_appends_to_the_case_and_holds_each_slot_in_one_unit_of_work(
        store: InMemoryEventStore) -> None:
    one, two = open_slot(store), open_slot(store, 2)
    accepted(store)
    await handle(store, ProposeSlots(case_id=CASE_ID, slot_ids=(one, two)))
    proposal, *holds = store.new_events()
    assert isinstance(proposal, SlotsProposed)
    assert [candidate.slot_id for candidate in proposal.candidates] == [one, two]
    assert sorted(holds, key=lambda held: str(getattr(held, "slot_id"))) == sorted(  # noqa: B009
        [SlotHeld(slot_id=slot, case_id=CASE_ID, hold_expires_at=NOW + HOLD) for slot in (one, two)],
        key=lambda held: str(held.slot_id))
    # Only the published event goes to the outbox; the slots' events are scheduling's own.
    assert [envelope.type for envelope in store.outbox] == [SlotsProposed.type_name()]


async def test_a_refused_proposal_appends_nothing_to_any_stream(store: InMemoryEventStore) -> None:
    accepted(store)
    with pytest.raises(CommandRejected):
        await handle(store, ProposeSlots(case_id=CASE_ID, slot_ids=(uuid.uuid4(),)))  # a slot never opened
    assert store.new_events() == []
    assert store.outbox == []


async def test_a_withdrawal_during_proposals_releases_the_holds(store: InMemoryEventStore) -> None:
    slot = open_slot(store)
    accepted(store)
    await handle(store, ProposeSlots(case_id=CASE_ID, slot_ids=(slot,)))
    store.given(CASES.stream_id(CASE_ID), CASE_STREAM, [])  # the proposal is given too
    await handle(store, RecordWithdrawal(case_id=CASE_ID, reason=WithdrawalReason.NO_RESPONSE))
    withdrawn, released = store.new_events()
    assert withdrawn == CaseWithdrawalRecorded(case_id=CASE_ID, reason=WithdrawalReason.NO_RESPONSE)
    assert isinstance(released, SlotHoldReleased)
    assert released.slot_id == slot


async def test_case_accepted_twice_starts_scheduling_once(store: InMemoryEventStore) -> None:
    command = StartScheduling(case_id=CASE_ID, department="cardiology", mode=Mode.ONLINE)
    await handle(store, command)
    await handle(store, command)
    assert store.new_events() == [SchedulingStarted(case_id=CASE_ID, department="cardiology", mode=Mode.ONLINE)]


async def test_a_confirmation_that_loses_a_race_is_decided_again_on_the_winners_state(
        store: InMemoryEventStore) -> None:
    slot = open_slot(store)
    accepted(store)
    await handle(store, ProposeSlots(case_id=CASE_ID, slot_ids=(slot,)))
    store.given(CASES.stream_id(CASE_ID), CASE_STREAM, [])  # the proposal is given too
    confirm = ConfirmSlot(case_id=CASE_ID, slot_id=slot, appointment_id=uuid.uuid4())
    raced = False

    def units_of_work(context: CommandContext) -> InMemoryUnitOfWork:
        nonlocal raced
        if not raced:  # another desk confirms the same case between this attempt's load and its commit
            raced = True
            return RacedUnitOfWork(store, context, lambda: handle(store, confirm))
        return InMemoryUnitOfWork(store, context)

    with pytest.raises(CommandRejected) as refused:
        await run_retrying(HANDLERS[ConfirmSlot], confirm, CONTEXT, units_of_work)
    assert refused.value.code == "already_booked", refused.value.message
    assert [type(event).__name__ for event in store.new_events()].count("SlotConfirmed") == 1


class RacedUnitOfWork(InMemoryUnitOfWork):
    """Runs `meanwhile` (another writer) just before it commits."""

    def __init__(self, store: InMemoryEventStore, context: CommandContext,
                 meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(store, context)
        self.meanwhile = meanwhile

    async def commit(self) -> list[RecordedEvent]:
        await self.meanwhile()
        return await super().commit()



async def test_opening_slots_appends_one_stream_per_slot_and_refuses_overlaps_with_the_physicians_slots(
        store: InMemoryEventStore) -> None:
    command = OpenSlots(department="cardiology", physician_id="dr-sato", first_day=date(2026, 12, 7),
                        last_day=date(2026, 12, 8), start_times=(time(9, 30),), duration_minutes=60)
    await handle(store, command)
    opened = [event for event in store.new_events() if isinstance(event, SlotOpened)]
    assert [slot.start for slot in opened] == [datetime(2026, 12, 7, 0, 30, tzinfo=UTC),
                                               datetime(2026, 12, 8, 0, 30, tzinfo=UTC)]
    assert store.outbox == [], "slots are scheduling's own"
    SCHEDULES.times = [(slot.start, slot.end) for slot in opened]
    try:
        with pytest.raises(CommandRejected) as refused:
            await handle(store, command)
        assert refused.value.code == "slot_overlap"
    finally:
        SCHEDULES.times = []
