"""Event-sourced aggregates: state is folded from the stream; a command decides the new events.

`AggregateType` says what an aggregate is (its stream type, its initial state, how an event changes it); a unit of
work loads one by it (`await uow.load(cases, case_id)`). `AggregateRepository` is the same bound to an event store,
for code that works on the store directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from eventkit.db import Conn
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.retry import jittered, retrying
from eventkit.store import ConcurrencyError, EventStore

S = TypeVar("S")


class AggregateType(Generic[S]):
    def __init__(self, stream_type: str, initial: Callable[[], S], evolve: Callable[[S, Event], S]) -> None:
        self.stream_type = stream_type
        self.initial = initial
        self.evolve = evolve

    def stream_id(self, aggregate_id: object) -> str:
        return f"{self.stream_type}-{aggregate_id}"

    def fold(self, events: Sequence[RecordedEvent]) -> S:
        state = self.initial()
        for recorded in events:
            state = self.evolve(state, recorded.data)
        return state


class AggregateRepository(AggregateType[S]):
    def __init__(self, store: EventStore, stream_type: str, initial: Callable[[], S],
                 evolve: Callable[[S, Event], S]) -> None:
        super().__init__(stream_type, initial, evolve)
        self.store = store

    async def load(self, aggregate_id: object, *, conn: Conn | None = None) -> tuple[S, int]:
        events = await self.store.load(self.stream_id(aggregate_id), conn=conn)
        return self.fold(events), (events[-1].version if events else 0)

    async def execute(self, aggregate_id: object, decide: Callable[[S], Sequence[Event]], context: CommandContext,
                      *, conn: Conn | None = None, attempts: int = 10) -> list[RecordedEvent]:
        """Load, decide, append; on a concurrent append decide again from fresh state.

        Within a caller's transaction (`conn` given) a conflict is raised at once: the caller's whole
        transaction has to be retried, not just this step.
        """
        async for attempt in retrying(attempts=1 if conn is not None else attempts, on=ConcurrencyError,
                                      wait=jittered(0.005)):
            with attempt:
                state, version = await self.load(aggregate_id, conn=conn)
                return await self.store.append(self.stream_id(aggregate_id), self.stream_type, version,
                                               decide(state), context, conn=conn)
        raise AssertionError("unreachable")
