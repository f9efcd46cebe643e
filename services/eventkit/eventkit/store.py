"""The event store: append-only streams with optimistic concurrency, written with their outbox rows.

Each event is one row keyed by (stream_id, version); a second writer of the same version fails the
unique constraint and gets `ConcurrencyError`. Published events (contract models) get an outbox row in
the same transaction, so an event is stored if and only if it will be published.
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


class LocalRelay(Protocol):
    """The outbox relay of this process, as the store sees it: whether it leads (publishes for the database) and
    how to wake it."""

    @property
    def is_leader(self) -> bool: ...

    def wake(self, *_: Any) -> None: ...


# One statement per append: the version check, the events and their outbox rows. The check is the guard of the
# INSERT (no row when the stream is not at the expected version); two writers who both passed it collide on the
# (stream_id, version) unique constraint.
_APPEND_EVENTS = """
    INSERT INTO events
        (stream_id, stream_type, version, event_id, event_type, schema_version, data, metadata, recorded_at)
    SELECT $1, $2, $3 + n, id, t, sv, d::jsonb, $8::jsonb, $9
    FROM unnest($4::uuid[], $5::text[], $6::int[], $7::text[]) WITH ORDINALITY AS u(id, t, sv, d, n)
    WHERE (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1) = $3
    RETURNING version, position"""
_APPEND_EVENTS_AND_OUTBOX = f"""
    WITH appended AS ({_APPEND_EVENTS}),
    outboxed AS (
        INSERT INTO outbox (event_id, routing_key, body, headers)
        SELECT id, rk, body, $13::jsonb
        FROM unnest($10::uuid[], $11::text[], $12::bytea[]) AS o(id, rk, body)
        WHERE EXISTS (SELECT FROM appended))
    SELECT version, position FROM appended"""


_LOAD = "SELECT * FROM events WHERE stream_id = $1 ORDER BY version"


class EventStore:
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
        if not events:
            return []
        try:
            async with self.transaction(conn) as tx:
                return await self._append(tx, stream_id, stream_type, expected_version, events, context)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "events_stream_version_unique":
                raise ConcurrencyError(stream_id, expected_version) from None
            raise

    async def _append(self, conn: Conn, stream_id: str, stream_type: str, expected_version: int,
                      events: Sequence[Event], context: CommandContext) -> list[RecordedEvent]:
        metadata = context.metadata()
        traceparent = current_traceparent()
        if traceparent:
            metadata["traceparent"] = traceparent
        # Stamped here rather than by PostgreSQL so that the outbox rows, which carry it, go in the same statement.
        recorded_at = datetime.now(UTC)
        recorded = [
            RecordedEvent(position=0, stream_id=stream_id, stream_type=stream_type, version=expected_version + i,
                          event_id=uuid4(), data=event, metadata=metadata, recorded_at=recorded_at)
            for i, event in enumerate(events, start=1)
        ]
        arguments: list[Any] = [
            stream_id, stream_type, expected_version,
            [r.event_id for r in recorded],
            [event.NAME for event in events],
            [event.VERSION for event in events],
            [event.model_dump_json() for event in events],
            json.dumps(metadata),
            recorded_at,
        ]
        envelopes = self._envelopes(recorded, context, traceparent)
        if envelopes:
            headers = json.dumps({"traceparent": traceparent} if traceparent else {})
            rows = await conn.fetch(_APPEND_EVENTS_AND_OUTBOX, *arguments, [e.id for e in envelopes],
                                    [e.routing_key for e in envelopes], [e.to_json_bytes() for e in envelopes], headers)
        else:
            rows = await conn.fetch(_APPEND_EVENTS, *arguments)
        if not rows:
            actual = await conn.fetchval("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1",
                                         stream_id)
            raise ConcurrencyError(stream_id, expected_version, actual)
        positions = {row["version"]: row["position"] for row in rows}
        recorded = [replace(r, position=positions[r.version]) for r in recorded]
        if envelopes:
            await self._wake_relay(conn)
        for projection in self.projections:
            await projection.apply(conn, recorded)
        return recorded

    def _envelopes(self, recorded: Sequence[RecordedEvent], context: CommandContext,
                   traceparent: str | None) -> list[CloudEvent]:
        envelopes = []
        for r in recorded:
            if not isinstance(r.data, EventData):
                continue
            envelopes.append(
                envelope_for(self.service, r.data, r.event_id, r.version, r.recorded_at, context, traceparent))
            # Deprecated versions go out beside their successor, each with its own stable id.
            envelopes += [
                envelope_for(self.service, older, uuid5(r.event_id, older.type_name()), r.version, r.recorded_at,
                             context, traceparent, superseded_by=r.data.type_name())
                for older in r.data.published_alongside()
            ]
        return envelopes

    async def _wake_relay(self, conn: Conn) -> None:
        """Once the transaction commits, the relay that leads has to look at the outbox. When it runs in this process
        it is woken directly after the commit; otherwise a NOTIFY in the transaction reaches it (PostgreSQL
        serializes the commits of notifying transactions, so the direct way is also the one that scales)."""
        relay = self.relay
        if relay is not None and relay.is_leader and db.after_commit(conn, relay.wake):
            return
        await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")

    def _recorded(self, row: asyncpg.Record) -> RecordedEvent:
        return RecordedEvent(
            position=row["position"], stream_id=row["stream_id"], stream_type=row["stream_type"],
            version=row["version"], event_id=row["event_id"],
            data=self.types.load(row["event_type"], row["schema_version"], row["data"]),
            metadata=pydantic_core.from_json(row["metadata"]), recorded_at=row["recorded_at"].astimezone(UTC),
        )

    async def load(self, stream_id: str, *, conn: Conn | None = None) -> list[RecordedEvent]:
        rows = await (conn.fetch(_LOAD, stream_id) if conn is not None else self._load_rows(stream_id))
        return [self._recorded(row) for row in rows]

    @db.retried_read
    async def _load_rows(self, stream_id: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as acquired:
            rows: list[asyncpg.Record] = await acquired.fetch(_LOAD, stream_id)
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
