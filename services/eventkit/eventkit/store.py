"""The event store: append-only streams with optimistic concurrency, written with their outbox rows.

Each event is one row keyed by (stream_id, version). An append says the version it expects the stream at; if another
writer got there first, nothing of it is written and it raises `ConcurrencyError`. Published events (contract models)
get an outbox row in the same statement, so an event is stored if and only if it will be published; the relay
(eventkit.outbox) publishes the rows. Projections (read models) are written in the same transaction as the events.
Events stored by an older release are upcast when loaded (`EventTypes`).

Read top to bottom: the errors, projections and event types; the outbox envelope; the one write statement; the
store. Writing many appends at once (group commit, a consumer batch's appends together) is eventkit.batching: it
wraps this store and changes its speed, not what it does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4, uuid5

import asyncpg
import pydantic_core

from eventkit import db
from eventkit.db import Conn
from eventkit.events import CommandContext, Event, PrivateEvent, RecordedEvent
from eventkit.read_models import RowChanges as RowChanges
from eventkit.read_models import apply_to_rows as apply_to_rows
from eventkit.telemetry import current_traceparent
from secondopinion_contracts import CloudEvent, EventData

OUTBOX_CHANNEL = "eventkit_outbox"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class ConcurrencyError(Exception):
    """Another writer appended to the stream since it was loaded."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        detail = f", it is at {actual_version}" if actual_version is not None else ""
        super().__init__(f"stream {stream_id} changed concurrently: expected version {expected_version}{detail}")


class UnknownStoredEvent(LookupError):
    pass


class Projection(Protocol):
    """A read model kept in the same transaction as the events it reflects, rebuildable from them."""

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> Sequence[str]: ...

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None: ...


@dataclass(frozen=True)
class EventTypes:
    """Which model each stored (name, schema version) loads as, and how old versions are upcast."""

    classes: Mapping[str, type[Event]]
    upcasters: Mapping[tuple[str, int], Upcaster]

    @classmethod
    def of(cls, *events: type[Event], upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> EventTypes:
        latest: dict[str, type[Event]] = {}
        for event in events:
            if event.NAME not in latest or event.VERSION > latest[event.NAME].VERSION:
                latest[event.NAME] = event
        return cls(classes=latest, upcasters=dict(upcasters or {}))

    def load(self, name: str, schema_version: int, stored: str) -> Event:
        """The event from its stored JSON text."""
        model = self.classes.get(name)
        if model is None:
            raise UnknownStoredEvent(f"no model for stored event {name} v{schema_version}")
        if schema_version == model.VERSION:
            return model.model_validate_json(stored)  # parsed and validated in one pass: most of a read's time
        data: dict[str, Any] = json.loads(stored)
        while schema_version < model.VERSION:
            upcast = self.upcasters.get((name, schema_version))
            if upcast is None:
                raise UnknownStoredEvent(f"no upcaster for stored event {name} v{schema_version}")
            data = upcast(data)
            schema_version += 1
        return model.model_validate(data)


def envelope_for(service: str, event: EventData, event_id: UUID, version: int, recorded_at: datetime,
                 context: CommandContext, traceparent: str | None, superseded_by: str | None = None) -> CloudEvent:
    return CloudEvent(
        supersededby=superseded_by,
        id=event_id,
        source=f"/secondopinion/{service}",
        type=event.type_name(),
        subject=context.correlation_id,
        time=recorded_at,
        dataschema=event.schema_uri(),
        data=event.model_dump(mode="json"),
        sequence=version,
        correlationid=context.correlation_id,
        causationid=context.causation_id,
        traceparent=traceparent,
        actorid=context.actor.id,
        actorrole=context.actor.role,
    )


def envelopes_of(service: str, r: RecordedEvent, context: CommandContext, traceparent: str | None) -> list[CloudEvent]:
    """What the bus gets of a recorded event (its outbox rows): nothing for a private one; a contract event, and
    beside it each deprecated version it is still published as, with its own stable id."""
    if not isinstance(r.data, EventData):
        return []
    return [
        envelope_for(service, r.data, r.event_id, r.version, r.recorded_at, context, traceparent),
        *(envelope_for(service, older, uuid5(r.event_id, older.type_name()), r.version, r.recorded_at,
                       context, traceparent, superseded_by=r.data.type_name())
          for older in r.data.published_alongside()),
    ]


class LocalRelay(Protocol):
    """The outbox relay of this process, as the store sees it: whether it leads (publishes for the database) and
    how to wake it."""

    @property
    def is_leader(self) -> bool: ...

    def wake(self, *_: Any) -> None: ...


# One statement writes any number of appends, to different streams: their events, each guarded by its stream's
# version check, the outbox rows of the events that were written and, when asked ($19), the NOTIFY that wakes the
# relay leading elsewhere (in the statement rather than after it: one round trip less a transaction). The check is
# the guard of the INSERT (no row for a stream that is not at the expected version, while the other streams' rows
# go in); two writers who both passed it collide on the (stream_id, version) unique constraint.
_APPEND = """
    WITH appended AS (
        INSERT INTO events
            (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata, recorded_at)
        SELECT s, st, v, id, t, sv, d::jsonb, m::jsonb, at
        FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::uuid[], $6::text[], $7::int[], $8::text[],
                    $9::text[], $10::timestamptz[], $11::int[]) AS u(s, st, expected, v, id, t, sv, d, m, at, n)
        WHERE (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = u.s) = u.expected
        ORDER BY n
        RETURNING stream_id, version, position, event_id),
    outboxed AS (
        INSERT INTO outbox (event_id, routing_key, body, headers, correlation_id)
        SELECT id, rk, body, h::jsonb, c
        FROM unnest($12::uuid[], $13::uuid[], $14::text[], $15::bytea[], $16::text[], $17::text[], $18::int[])
            AS o(source, id, rk, body, h, c, n)
        WHERE source IN (SELECT event_id FROM appended)
        ORDER BY n
        RETURNING id),
    notified AS (SELECT pg_notify('""" + OUTBOX_CHANNEL + """', '') WHERE $19 AND EXISTS (SELECT FROM outboxed))
    SELECT stream_id, version, position FROM appended LEFT JOIN notified ON true"""


LOAD_STREAM = "SELECT * FROM events WHERE stream_id = $1 ORDER BY version"
LOAD_STREAMS = "SELECT * FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version"
STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1"


@dataclass(frozen=True)
class AppendRequest:
    """What one `append` asks for."""

    stream_id: str
    stream_type: str
    expected_version: int
    events: Sequence[Event]
    context: CommandContext
    traceparent: str | None


@dataclass
class PreparedAppend:
    """An append turned into its rows (events, outbox), ready to be written alone or with others."""

    recorded: list[RecordedEvent]
    event_rows: list[tuple[Any, ...]]
    outbox_rows: list[tuple[Any, ...]]

    @property
    def stream_id(self) -> str:
        return self.recorded[0].stream_id

    @property
    def expected_version(self) -> int:
        return self.recorded[0].version - 1


class EventStore:
    """Appends and loads on PostgreSQL. An append made outside a caller's transaction is written and committed on its
    own; one made in a caller's transaction (`conn`) is part of it, and a conflict aborts all of it (the caller
    retries the whole)."""

    def __init__(self, pool: asyncpg.Pool, *, service: str, types: EventTypes,
                 projections: Sequence[Projection] = (), relay: LocalRelay | None = None) -> None:
        self.pool = pool
        self.service = service
        self.types = types
        self.projections = tuple(projections)
        self.relay = relay

    @asynccontextmanager
    async def transaction(self, conn: Conn | None = None) -> AsyncIterator[Conn]:
        """A transaction on a fresh pooled connection, or on `conn`: joining the transaction it has open (an error
        aborts all of it, the caller retries it whole) or else opening one."""
        if conn is None:
            async with db.transaction(self.pool) as acquired:
                yield acquired
        elif conn.is_in_transaction():
            yield conn
        else:
            async with conn.transaction():
                yield conn

    async def append(self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[Event],
                     context: CommandContext, *, conn: Conn | None = None) -> list[RecordedEvent]:
        """`events` appended to the stream, which must be at `expected_version` (else `ConcurrencyError`, nothing
        written); their recorded forms, with positions, in order."""
        if not events:
            return []
        return await self._submit(
            AppendRequest(stream_id, stream_type, expected_version, events, context, current_traceparent()), conn)

    async def load(self, stream_id: str, *, conn: Conn | None = None) -> list[RecordedEvent]:
        """The stream's events in version order, upcast to the current models; on `conn`, in its transaction."""
        rows = await (self._load_rows(stream_id) if conn is None else conn.fetch(LOAD_STREAM, stream_id))
        return [self._recorded(row) for row in rows]

    async def read_all(self, *, after: int = 0, batch: int = 5000,
                       conn: Conn | None = None) -> AsyncIterator[list[RecordedEvent]]:
        """Every event in position order, in batches (for projection rebuilds)."""
        position = after
        while True:
            query = "SELECT * FROM events WHERE position > $1 ORDER BY position LIMIT $2"
            if conn is not None:
                rows = await conn.fetch(query, position, batch)
            else:
                async with self.pool.acquire() as acquired:
                    rows = await acquired.fetch(query, position, batch)
            if not rows:
                return
            events = [self._recorded(row) for row in rows]
            position = events[-1].position
            yield events

    async def rebuild_projections(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Empty every projection and replay the whole store through it, in one transaction."""
        async with db.transaction(self.pool) as conn:
            # Lock out writers so the replay sees every event and no append slips in between.
            await conn.execute("LOCK TABLE events IN SHARE MODE")
            total = await conn.fetchval("SELECT count(*) FROM events")
            for projection in self.projections:
                for table in projection.tables:
                    await conn.execute(f"TRUNCATE {table}")
            done = 0
            async for events in self.read_all(conn=conn):
                for projection in self.projections:
                    await projection.apply(conn, events)
                done += len(events)
                if progress:
                    progress(done, total)
            return done

    # --- the write path (eventkit.batching writes many appends through the same steps) ---------------------------

    async def _submit(self, append: AppendRequest, conn: Conn | None) -> list[RecordedEvent]:
        """How an append is written: alone, here (eventkit.batching may write it with others)."""
        return await self._append_alone(append, conn)

    async def _append_alone(self, append: AppendRequest, conn: Conn | None = None) -> list[RecordedEvent]:
        try:
            if conn is None:
                [recorded] = await self._write_committed([append])
            else:
                async with self.transaction(conn) as tx:
                    [recorded] = await self._write(tx, [append])
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "events_stream_version_unique":
                raise ConcurrencyError(append.stream_id, append.expected_version) from None
            raise
        if recorded is None:
            actual = await (conn.fetchval(STREAM_VERSION, append.stream_id) if conn is not None
                            else self._stream_version(append.stream_id))
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)
        return recorded

    async def _write_committed(self, appends: Sequence[AppendRequest]) -> list[list[RecordedEvent] | None]:
        """The appends written and committed in a transaction of their own. With no projections to keep, that
        transaction is the one statement that writes them (PostgreSQL commits a statement sent outside a transaction
        by itself, all of it or nothing): one round trip instead of three (BEGIN, the statement, COMMIT)."""
        if self.projections:
            async with db.transaction(self.pool) as conn:
                return await self._write(conn, appends)
        async with self.pool.acquire() as conn:
            written = await self._write(conn, appends)
        if self.relay is not None and self.relay.is_leader:
            self.relay.wake()
        return written

    async def _write(self, conn: Conn, appends: Sequence[AppendRequest]) -> list[list[RecordedEvent] | None]:
        """In `conn`'s transaction (or, for a store without projections only, as a statement committed by itself: see
        `_write_committed`): the appends' events, outbox rows and projections; for each append its recorded events,
        or None where its stream was not at the expected version (nothing of it is written)."""
        # Stamped here rather than by PostgreSQL so that the outbox rows, which carry it, go in the same statement.
        recorded_at = datetime.now(UTC)
        return await self._write_prepared(conn, [self._prepare(append, recorded_at) for append in appends])

    def _prepare(self, append: AppendRequest, recorded_at: datetime) -> PreparedAppend:
        metadata = append.context.metadata()
        if append.traceparent:
            metadata["traceparent"] = append.traceparent
        metadata_json = pydantic_core.to_json(metadata).decode()
        headers = pydantic_core.to_json({"traceparent": append.traceparent} if append.traceparent else {}).decode()
        prepared = PreparedAppend([], [], [])
        for version, event in enumerate(append.events, start=append.expected_version + 1):
            r = RecordedEvent(position=0, stream_id=append.stream_id, stream_type=append.stream_type,
                              version=version, event_id=uuid4(), data=event, metadata=metadata,
                              recorded_at=recorded_at)
            prepared.recorded.append(r)
            prepared.event_rows.append((r.stream_id, r.stream_type, append.expected_version, version, r.event_id,
                                        event.NAME, event.VERSION, event.model_dump_json(), metadata_json,
                                        recorded_at))
            prepared.outbox_rows += [(r.event_id, envelope.id, envelope.routing_key, envelope.to_json_bytes(), headers,
                                      envelope.correlationid)
                                     for envelope in envelopes_of(self.service, r, append.context, append.traceparent)]
        return prepared

    async def _write_prepared(self, conn: Conn, prepared: Sequence[PreparedAppend]) -> list[list[RecordedEvent] | None]:
        event_rows = [(*row, n) for n, row in enumerate(row for p in prepared for row in p.event_rows)]
        outbox_rows = [(*row, n) for n, row in enumerate(row for p in prepared for row in p.outbox_rows)]
        columns = [list(column) for column in zip(*event_rows, strict=True)]
        outbox_columns = [list(column) for column in zip(*outbox_rows, strict=True)] or [[]] * 7
        notify = bool(outbox_rows) and not self._relay_woken_after_commit(conn)
        rows = await conn.fetch(_APPEND, *columns, *outbox_columns, notify)
        positions = {(row["stream_id"], row["version"]): row["position"] for row in rows}
        written: list[list[RecordedEvent] | None] = [
            [replace(r, position=positions[r.stream_id, r.version]) for r in p.recorded]
            if (p.recorded[0].stream_id, p.recorded[0].version) in positions else None
            for p in prepared
        ]
        applied = [r for these in written if these is not None for r in these]
        if applied:
            for projection in self.projections:
                await projection.apply(conn, applied)
        return written

    def _relay_woken_after_commit(self, conn: Conn) -> bool:
        """Once the appends commit, the relay that leads has to look at the outbox. When it runs in this process it is
        woken directly after the commit (True): by `db.after_commit` in a transaction, by `_write_committed` after a
        statement that commits by itself. Otherwise the append's statement sends a NOTIFY to reach it (PostgreSQL
        serializes the commits of notifying transactions, so the direct way is also the one that scales). A wake-up
        for an append that wrote nothing only makes the relay look once."""
        relay = self.relay
        if relay is None or not relay.is_leader:
            return False
        return not conn.is_in_transaction() or db.after_commit(conn, relay.wake)

    def _recorded(self, row: asyncpg.Record) -> RecordedEvent:
        return RecordedEvent(
            position=row["position"], stream_id=row["stream_id"], stream_type=row["stream_type"],
            version=row["version"], event_id=row["event_id"],
            data=self.types.load(row["event_type"], row["schema_version"], row["data"]),
            metadata=pydantic_core.from_json(row["metadata"]), recorded_at=row["recorded_at"].astimezone(UTC),
        )

    async def _stream_version_if_known(self, stream_id: str) -> int | None:
        """For a refusal's message only: the refusal stands whether or not the version can be read now."""
        try:
            return await self._stream_version(stream_id)
        except Exception:
            return None

    @db.retried_read
    async def _stream_version(self, stream_id: str) -> int:
        async with self.pool.acquire() as acquired:
            version: int = await acquired.fetchval(STREAM_VERSION, stream_id)
            return version

    @db.retried_read
    async def _load_rows(self, stream_id: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as acquired:
            rows: list[asyncpg.Record] = await acquired.fetch(LOAD_STREAM, stream_id)
            return rows


def is_private(event: Event) -> bool:
    return isinstance(event, PrivateEvent)
