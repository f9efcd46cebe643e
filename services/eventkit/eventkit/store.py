"""The event store: append-only streams with optimistic concurrency, written with their outbox rows.

Each event is one row keyed by (stream_id, version); a second writer of the same version fails the
unique constraint and gets `ConcurrencyError`. Published events (contract models) get an outbox row in
the same transaction, so an event is stored if and only if it will be published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

import asyncpg
import pydantic_core

from eventkit import db, metrics
from eventkit.db import Conn
from eventkit.events import CommandContext, Event, PrivateEvent, RecordedEvent
from eventkit.group_commit import GroupCommitter, Pending
from eventkit.telemetry import current_traceparent
from secondopinion_contracts import CloudEvent, EventData

log = logging.getLogger(__name__)

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


K = TypeVar("K")
# A read model's rows changed by a batch of events: each row's key, the row as it was (None: a row to create) and the
# events not applied to it yet, in stream order.
RowChanges = Sequence[tuple[K, asyncpg.Record | None, list[RecordedEvent]]]


async def apply_to_rows(conn: Conn, streams: Mapping[K, list[RecordedEvent]], *,
                        read: Callable[[Conn, list[K]], Awaitable[Sequence[asyncpg.Record]]],
                        key: Callable[[asyncpg.Record], K],
                        write: Callable[[Conn, RowChanges[K], bool], Awaitable[set[K]]]) -> None:
    """Keeps a read model of one row per stream (with a `version` column: the last version applied) for however many
    streams and events come at once (a consumer's batch, a rebuild's batch of the log) in a few statements instead of
    some per event: `write(conn, changes, only_if_new)` folds each row's new events onto it and writes all of them in
    one statement, returning the keys written (with `only_if_new`, a row that exists is left alone).

    Streams that begin in the batch are written without a read (their rows cannot exist unless their first events
    were applied before); the others are read together (`read`, which should lock them: `FOR UPDATE`, in key order)
    and get only the events of versions above their row's (rebuild and live apply are idempotent per version)."""
    new: RowChanges[K] = [(k, None, events) for k, events in streams.items() if events[0].version == 1]
    written = await write(conn, new, True) if new else set()
    others = [k for k in streams if k not in written]
    if not others:
        return
    rows = {key(row): row for row in await read(conn, others)}
    changes: list[tuple[K, asyncpg.Record | None, list[RecordedEvent]]] = []
    for k in others:
        row = rows.get(k)
        unseen = [event for event in streams[k] if row is None or event.version > row["version"]]
        if unseen:
            changes.append((k, row, unseen))
    if changes:
        await write(conn, changes, False)


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
_LOAD_MANY = "SELECT * FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version"
_STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1"


@dataclass(frozen=True)
class _Append:
    """What one `append` asks for, as a batch carries it."""

    stream_id: str
    stream_type: str
    expected_version: int
    events: Sequence[Event]
    context: CommandContext
    traceparent: str | None


@dataclass
class _Prepared:
    """An append turned into its rows, ready to be written with others."""

    recorded: list[RecordedEvent]
    event_rows: list[tuple[Any, ...]]
    outbox_rows: list[tuple[Any, ...]]

    @property
    def stream_id(self) -> str:
        return self.recorded[0].stream_id

    @property
    def expected_version(self) -> int:
        return self.recorded[0].version - 1


@dataclass
class _Block:
    """One connection's `appends_written_together` block: the appends waiting, each with the list its caller got, and
    the streams loaded ahead (rows by stream id; a stream appended to since is dropped)."""

    waiting: list[tuple[_Prepared, list[RecordedEvent]]] = field(default_factory=list)
    loaded_ahead: dict[str, list[asyncpg.Record]] = field(default_factory=dict)


class EventStore:
    """Appends made outside a caller's transaction (most commands') are group-committed: those that arrive while
    others commit are written together, in one statement and one transaction (at most `append_batch_max`; 1 writes
    each alone). An append that fails in a batch (its stream's version guard) fails alone; if the batch fails as a
    whole (a projection's error, a collision with another replica), each of its appends is written again on its
    own, so one never takes the others with it. Appends made inside a caller's transaction are part of it; within
    `appends_written_together` (a consumer's batch) they wait and are written together when the block ends."""

    def __init__(self, pool: asyncpg.Pool, *, service: str, types: EventTypes,
                 projections: Sequence[Projection] = (), relay: LocalRelay | None = None,
                 append_batch_max: int = 32) -> None:
        self.pool = pool
        self.service = service
        self.types = types
        self.projections = tuple(projections)
        self.relay = relay
        self.append_batch_max = append_batch_max
        self._appends: GroupCommitter[_Append, list[RecordedEvent]] = GroupCommitter(
            self._commit_appends, batch_max=append_batch_max, key=lambda append: append.stream_id)
        self._blocks: dict[Conn, _Block] = {}  # the connections inside `appends_written_together`

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
        if not events:
            return []
        append = _Append(stream_id, stream_type, expected_version, events, context, current_traceparent())
        if conn is None and self.append_batch_max > 1:
            return await self._appends.run(append)
        if conn is not None and conn in self._blocks:
            return await self._append_later(conn, append)
        return await self._append_alone(append, conn)

    @asynccontextmanager
    async def appends_written_together(self, conn: Conn, load_ahead: Sequence[str] = ()) -> AsyncIterator[None]:
        """Within the block, appends made on `conn` (in the transaction it has open) wait and are written when the
        block ends, all in one statement, then their projections: a consumer's batch of deliveries makes one write
        for all of its handlers instead of two round trips (events, projections) for each. A load of, or another
        append to, a stream with an append waiting writes what waits first, so a handler reads its own and earlier
        handlers' appends through the store as before. The lists `append` returns get their positions when written;
        a refused append raises `ConcurrencyError` from the write (the caller's whole transaction is retried, as
        it is for an append made at once). Projection tables are written only then: code in the block that reads
        them does not see the block's appends yet.

        `load_ahead`: streams the block's handlers will load, read at the start in one statement instead of one
        each; a load of one of them in the block is answered from what was read (unless the block appended to it
        since). A writer elsewhere appending to such a stream meanwhile is not seen: the block's append to it then
        fails its version guard, as it would had that writer come a moment later, and the caller retries."""
        block = self._blocks[conn] = _Block()
        try:
            if load_ahead:
                block.loaded_ahead = await self._load_many(conn, load_ahead)
            yield
            await self._write_waiting(conn)
        finally:
            del self._blocks[conn]

    async def _load_many(self, conn: Conn, stream_ids: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
        loaded: dict[str, list[asyncpg.Record]] = {stream_id: [] for stream_id in stream_ids}
        for row in await conn.fetch(_LOAD_MANY, list(loaded)):
            loaded[row["stream_id"]].append(row)
        return loaded

    async def _append_later(self, conn: Conn, append: _Append) -> list[RecordedEvent]:
        if self._has_waiting(conn, append.stream_id):
            # One statement checks every stream's version before it writes: a second append to a stream has to
            # come after the first is written.
            await self._write_waiting(conn)
        block = self._blocks[conn]
        block.loaded_ahead.pop(append.stream_id, None)
        prepared = self._prepare(append, datetime.now(UTC))
        handed_out = list(prepared.recorded)
        block.waiting.append((prepared, handed_out))
        return handed_out

    def _has_waiting(self, conn: Conn, stream_id: str) -> bool:
        block = self._blocks.get(conn)
        return block is not None and any(prepared.stream_id == stream_id for prepared, _ in block.waiting)

    async def _write_waiting(self, conn: Conn) -> None:
        waiting = self._blocks[conn].waiting
        if not waiting:
            return
        batch = list(waiting)
        waiting.clear()
        try:
            written = await self._write_prepared(conn, [prepared for prepared, _ in batch])
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "events_stream_version_unique":
                # The key in the error's detail names the stream.
                collided = next((p for p, _ in batch if p.stream_id in (error.detail or "")), batch[0][0])
                raise ConcurrencyError(collided.stream_id, collided.expected_version) from None
            raise
        for (prepared, handed_out), recorded in zip(batch, written, strict=True):
            if recorded is None:
                actual = await conn.fetchval(_STREAM_VERSION, prepared.stream_id)
                raise ConcurrencyError(prepared.stream_id, prepared.expected_version, actual)
            handed_out[:] = recorded

    async def _append_alone(self, append: _Append, conn: Conn | None = None) -> list[RecordedEvent]:
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
            actual = await (conn.fetchval(_STREAM_VERSION, append.stream_id) if conn is not None
                            else self._stream_version(append.stream_id))
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)
        return recorded

    async def _commit_appends(self, batch: list[Pending[_Append, list[RecordedEvent]]]) -> None:
        metrics.APPEND_BATCH_SIZE.labels(self.service).observe(len(batch))
        if len(batch) > 1:
            # Streams in one order, so that two replicas' batches take the index entries' locks alike.
            batch.sort(key=lambda pending: pending.work.stream_id)
            try:
                results = await self._write_committed([pending.work for pending in batch])
            except Exception as error:
                if db.is_database_lost(error):
                    for pending in batch:
                        pending.fail(error)
                    return
                log.info("a batch of %d appends failed (%s); writing each on its own", len(batch),
                         error.__class__.__name__)
                metrics.APPEND_BATCH_FALLBACKS.labels(self.service).inc()
            else:
                for pending, recorded in zip(batch, results, strict=True):
                    if recorded is None:
                        append = pending.work
                        actual = await self._stream_version_if_known(append.stream_id)
                        pending.fail(ConcurrencyError(append.stream_id, append.expected_version, actual))
                    else:
                        pending.resolve(recorded)
                return
        for pending in batch:
            try:
                pending.resolve(await self._append_alone(pending.work))
            except Exception as error:
                pending.fail(error)

    async def _write_committed(self, appends: Sequence[_Append]) -> list[list[RecordedEvent] | None]:
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

    async def _write(self, conn: Conn, appends: Sequence[_Append]) -> list[list[RecordedEvent] | None]:
        """In `conn`'s transaction (or, for a store without projections only, as a statement committed by itself: see
        `_write_committed`): the appends' events, outbox rows and projections; for each append its recorded events,
        or None where its stream was not at the expected version (nothing of it is written)."""
        # Stamped here rather than by PostgreSQL so that the outbox rows, which carry it, go in the same statement.
        recorded_at = datetime.now(UTC)
        return await self._write_prepared(conn, [self._prepare(append, recorded_at) for append in appends])

    def _prepare(self, append: _Append, recorded_at: datetime) -> _Prepared:
        metadata = append.context.metadata()
        if append.traceparent:
            metadata["traceparent"] = append.traceparent
        metadata_json = pydantic_core.to_json(metadata).decode()
        headers = pydantic_core.to_json({"traceparent": append.traceparent} if append.traceparent else {}).decode()
        prepared = _Prepared([], [], [])
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

    async def _write_prepared(self, conn: Conn, prepared: Sequence[_Prepared]) -> list[list[RecordedEvent] | None]:
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

    async def load(self, stream_id: str, *, conn: Conn | None = None) -> list[RecordedEvent]:
        if conn is None:
            rows = await self._load_rows(stream_id)
        else:
            if self._has_waiting(conn, stream_id):
                await self._write_waiting(conn)
            block = self._blocks.get(conn)
            loaded_ahead = block.loaded_ahead.get(stream_id) if block is not None else None
            rows = loaded_ahead if loaded_ahead is not None else await conn.fetch(LOAD_STREAM, stream_id)
        return [self._recorded(row) for row in rows]

    async def _stream_version_if_known(self, stream_id: str) -> int | None:
        """For a refusal's message only: the refusal stands whether or not the version can be read now."""
        try:
            return await self._stream_version(stream_id)
        except Exception:
            return None

    @db.retried_read
    async def _stream_version(self, stream_id: str) -> int:
        async with self.pool.acquire() as acquired:
            version: int = await acquired.fetchval(_STREAM_VERSION, stream_id)
            return version

    @db.retried_read
    async def _load_rows(self, stream_id: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as acquired:
            rows: list[asyncpg.Record] = await acquired.fetch(LOAD_STREAM, stream_id)
            return rows

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


def is_private(event: Event) -> bool:
    return isinstance(event, PrivateEvent)
