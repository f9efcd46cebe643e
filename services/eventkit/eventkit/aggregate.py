"""Event-sourced aggregates: state is folded from the stream; a command decides the new events."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from eventkit.db import Conn
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import ConcurrencyError, EventStore

S = TypeVar("S")


class AggregateRepository(Generic[S]):
    def __init__(self, store: EventStore, stream_type: str, initial: Callable[[], S],
                 evolve: Callable[[S, Event], S]) -> None:
        self.store = store
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

    async def load(self, aggregate_id: object, *, conn: Conn | None = None) -> tuple[S, int]:
        events = await self.store.load(self.stream_id(aggregate_id), conn=conn)
        return self.fold(events), (events[-1].version if events else 0)

    async def execute(self, aggregate_id: object, decide: Callable[[S], Sequence[Event]], context: CommandContext,
                      *, conn: Conn | None = None, attempts: int = 10) -> list[RecordedEvent]:
        """Load, decide, append; on a concurrent append decide again from fresh state.

        Within a caller's transaction (`conn` given) a conflict is raised at once: the caller's whole
        transaction has to be retried, not just this step.
        """
        for attempt in range(1, attempts + 1):
            state, version = await self.load(aggregate_id, conn=conn)
            events = decide(state)
            try:
                return await self.store.append(self.stream_id(aggregate_id), self.stream_type, version, events,
                                               context, conn=conn)
            except ConcurrencyError:
                if conn is not None or attempt == attempts:
                    raise
                # Jitter, so that writers who collided do not collide again in lockstep.
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311
        raise AssertionError("unreachable")
