"""Event-sourced aggregates: state is folded from the stream; a command decides the new events.

`AggregateType` says what an aggregate is (its stream type, its initial state, how an event changes it); a unit of
work loads one by it (`await uow.load(cases, case_id)`) and appends at the version it was loaded at."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from eventkit.events import Event, RecordedEvent

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
