"""An event store and unit of work in memory, for fast handler tests with fakes: the same contract as the
PostgreSQL ones (append with expected version, conflicts, load with upcasting, outbox entries for published events,
inbox dedupe), checked by the same suite (services/eventkit/tests/test_contract.py).

    store = InMemoryEventStore("scheduling", TYPES)
    store.given("case-1", "case", [CaseOpened(...)])              # given these events
    await confirm_slot(command, InMemoryUnitOfWork(store, ctx))  # when the command
    assert store.new_events() == [SlotConfirmed(...)]           # then these events
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from eventkit.events import Actor, CommandContext, Event, RecordedEvent
from eventkit.store import ConcurrencyError, EventTypes, envelopes_of
from eventkit.telemetry import current_traceparent
from eventkit.unit_of_work import PendingAppend, UnitOfWork
from secondopinion_contracts import CloudEvent


@dataclass(frozen=True)
class _Row:
    """An event as stored: its data as JSON text under its name and schema version, so loading upcasts as the
    PostgreSQL store does."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    event_id: UUID
    name: str
    schema_version: int
    data: str
    metadata: dict[str, object]
    recorded_at: datetime


class InMemoryEventStore:
    def __init__(self, service: str, types: EventTypes) -> None:
        self.service = service
        self.types = types
        self._streams: dict[str, list[_Row]] = {}
        self._log: list[_Row] = []
        self.outbox: list[CloudEvent] = []  # what the relay would publish, in order
        self.inbox: dict[str, str] = {}  # consumed event ids and their types
        self._given = 0  # events in the log before the test's command: see `new_events`

    def version(self, stream_id: str) -> int:
        rows = self._streams.get(stream_id, [])
        return rows[-1].version if rows else 0

    async def load(self, stream_id: str) -> list[RecordedEvent]:
        return [self._recorded(row) for row in self._streams.get(stream_id, [])]

    async def append(self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[Event],
                     context: CommandContext) -> list[RecordedEvent]:
        return self.append_all([PendingAppend(stream_id, stream_type, expected_version, tuple(events))], context)

    def append_all(self, appends: Sequence[PendingAppend], context: CommandContext) -> list[RecordedEvent]:
        """All of `appends` or none: each stream has to be at its append's expected version (two appends to one
        stream: the second expects the first's last version)."""
        versions: dict[str, int] = {}
        for append in appends:
            actual = versions.get(append.stream_id, self.version(append.stream_id))
            if actual != append.expected_version:
                raise ConcurrencyError(append.stream_id, append.expected_version, actual)
            versions[append.stream_id] = append.expected_version + len(append.events)
        traceparent = current_traceparent()
        metadata = context.metadata() | ({"traceparent": traceparent} if traceparent else {})
        recorded_at = datetime.now(UTC)
        recorded: list[RecordedEvent] = []
        for append in appends:
            for version, event in enumerate(append.events, start=append.expected_version + 1):
                row = _Row(len(self._log) + 1, append.stream_id, append.stream_type, version, uuid4(), event.NAME,
                           event.VERSION, event.model_dump_json(), metadata, recorded_at)
                self._log.append(row)
                self._streams.setdefault(append.stream_id, []).append(row)
                recorded.append(self._recorded(row))
                self.outbox += envelopes_of(self.service, recorded[-1], context, traceparent)
        return recorded

    def store_as(self, stream_id: str, stream_type: str, name: str, schema_version: int, data: str) -> None:
        """An event stored as an older release wrote it (its name, schema version and JSON), to test upcasting."""
        row = _Row(len(self._log) + 1, stream_id, stream_type, self.version(stream_id) + 1, uuid4(), name,
                   schema_version, data, {}, datetime.now(UTC))
        self._log.append(row)
        self._streams.setdefault(stream_id, []).append(row)

    def given(self, stream_id: str, stream_type: str, events: Sequence[Event]) -> None:
        """Events that happened before the test: appended, and left out of `new_events` and the outbox's new part."""
        self.append_all([PendingAppend(stream_id, stream_type, self.version(stream_id), tuple(events))],
                        CommandContext(actor=Actor.service(self.service), correlation_id=stream_id))
        self._given = len(self._log)
        self.outbox.clear()

    def new_events(self) -> list[Event]:
        """The events appended since the last `given`."""
        return [self._recorded(row).data for row in self._log[self._given:]]

    async def read_all(self, *, after: int = 0, batch: int = 5000) -> AsyncIterator[list[RecordedEvent]]:
        for start in range(after, len(self._log), batch):
            yield [self._recorded(row) for row in self._log[start:start + batch]]

    def _recorded(self, row: _Row) -> RecordedEvent:
        return RecordedEvent(position=row.position, stream_id=row.stream_id, stream_type=row.stream_type,
                             version=row.version, event_id=row.event_id,
                             data=self.types.load(row.name, row.schema_version, row.data),
                             metadata=dict(row.metadata), recorded_at=row.recorded_at)


class InMemoryUnitOfWork(UnitOfWork):
    """A unit of work on an `InMemoryEventStore`: its appends and inbox entries are kept until it commits, then
    written all together (or, on a conflict, not at all)."""

    def __init__(self, store: InMemoryEventStore, context: CommandContext) -> None:
        super().__init__(context)
        self.store = store
        self._inbox: dict[str, str] = {}

    async def load_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self.store.load(stream_id)

    async def record_in_inbox(self, message_id: str, event_type: str) -> bool:
        if message_id in self.store.inbox or message_id in self._inbox:
            return False
        self._inbox[message_id] = event_type
        return True

    async def commit(self) -> list[RecordedEvent]:
        pending = self._take_pending()
        try:
            recorded = self.store.append_all(pending, self.context)
        except ConcurrencyError:
            self._inbox.clear()
            raise
        self.store.inbox.update(self._inbox)
        self._inbox.clear()
        self.committed = True
        self._run_after_commit()
        return recorded

    async def rollback(self) -> None:
        self._discard()
        self._inbox.clear()
