"""The event store's contract, as an abstract suite run against each backend (PostgreSQL here)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import ClassVar

import asyncpg
import pytest

from eventkit import db
from eventkit.db import Conn
from eventkit.events import Actor, CommandContext, PrivateEvent, RecordedEvent
from eventkit.store import ConcurrencyError, EventStore, EventTypes, RowChanges, apply_to_rows
from secondopinion_contracts.codes import DocumentKind
from secondopinion_contracts.events.intake import DocumentReceived


class NoteTaken(PrivateEvent):
    """Version 1 stored a single `text`; version 2 split it into `title` and `body`."""

    NAME: ClassVar[str] = "NoteTaken"
    VERSION: ClassVar[int] = 2
    title: str
    body: str


def upcast_note_v1(data: dict[str, object]) -> dict[str, object]:
    text = str(data["text"])
    title, _, body = text.partition(":")
    return {"title": title, "body": body.strip()}


TYPES = EventTypes.of(DocumentReceived, NoteTaken, upcasters={("NoteTaken", 1): upcast_note_v1})


def context(case_id: str = "case-1") -> CommandContext:
    return CommandContext(actor=Actor(id="nurse-7", role="coordinator"), correlation_id=case_id,
                          causation_id="command:1", command="Test")


def document(case_id: uuid.UUID) -> DocumentReceived:
    return DocumentReceived(case_id=case_id, document_id=uuid.uuid4(), kind=DocumentKind.TEST_RESULTS,
                            received_on=date(2026, 12, 1))


class EventStoreContract:
    """Every backend must pass these. Subclasses provide the `store` fixture."""

    async def test_append_then_load_returns_events_in_version_order(self, store: EventStore) -> None:
        case_id = uuid.uuid4()
        first = await store.append("case-a", "case", 0, [document(case_id), document(case_id)], context())
        second = await store.append("case-a", "case", 2, [document(case_id)], context())
        loaded = await store.load("case-a")
        assert [e.version for e in loaded] == [1, 2, 3]
        assert [e.event_id for e in loaded] == [e.event_id for e in first + second]
        assert loaded[0].data == first[0].data
        assert loaded[0].metadata["actor"] == {"id": "nurse-7", "role": "coordinator"}

    async def test_stale_expected_version_is_a_concurrency_error(self, store: EventStore) -> None:
        await store.append("case-b", "case", 0, [document(uuid.uuid4())], context())
        with pytest.raises(ConcurrencyError):
            await store.append("case-b", "case", 0, [document(uuid.uuid4())], context())
        with pytest.raises(ConcurrencyError):
            await store.append("case-b", "case", 5, [document(uuid.uuid4())], context())
        assert [e.version for e in await store.load("case-b")] == [1]

    async def test_concurrent_appends_at_one_version_have_exactly_one_winner(self, store: EventStore) -> None:
        await store.append("case-c", "case", 0, [document(uuid.uuid4())], context())

        async def attempt() -> str:
            try:
                await store.append("case-c", "case", 1, [document(uuid.uuid4())], context())
                return "won"
            except ConcurrencyError:
                return "conflict"

        outcomes = await asyncio.gather(*(attempt() for _ in range(12)))
        assert outcomes.count("won") == 1
        assert outcomes.count("conflict") == 11
        assert [e.version for e in await store.load("case-c")] == [1, 2]

    async def test_published_events_get_an_outbox_row_in_the_same_transaction(self, store: EventStore) -> None:
        recorded = await store.append("case-d", "case", 0, [document(uuid.uuid4())], context("case-d"))
        async with store.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT routing_key, body FROM outbox WHERE event_id = $1", recorded[0].event_id)
        assert row is not None
        assert row["routing_key"] == "intake.DocumentReceived.v1"
        envelope = json.loads(row["body"])
        assert envelope["id"] == str(recorded[0].event_id)
        assert envelope["type"] == "secondopinion.intake.DocumentReceived.v1"
        assert envelope["subject"] == "case-d"
        assert envelope["sequence"] == 1
        assert envelope["actorid"] == "nurse-7"

    async def test_a_failed_transaction_leaves_neither_event_nor_outbox_row(self, store: EventStore) -> None:
        async def crash_before_commit() -> None:
            async with store.transaction() as conn:
                await store.append("case-e", "case", 0, [document(uuid.uuid4())], context(), conn=conn)
                raise RuntimeError("crash after the append, before commit")

        with pytest.raises(RuntimeError):
            await crash_before_commit()
        assert await store.load("case-e") == []
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0

    async def test_private_events_are_stored_but_not_published(self, store: EventStore) -> None:
        await store.append("note-1", "note", 0, [NoteTaken(title="a", body="b")], context())
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert [e.name for e in await store.load("note-1")] == ["NoteTaken"]

    async def test_old_event_versions_are_upcast_on_load(self, store: EventStore) -> None:
        async with store.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version,
                                       data, metadata) VALUES ('note-2', 'note', 1, $1, 'NoteTaken', 1, $2, '{}')""",
                uuid.uuid4(), json.dumps({"text": "Referral: arrived by post"}))
        loaded = await store.load("note-2")
        assert loaded[0].data == NoteTaken(title="Referral", body="arrived by post")

    async def test_rebuild_replays_every_event_through_the_projections(self, store: EventStore) -> None:
        for index in range(7):
            await store.append(f"case-r{index}", "case", 0, [document(uuid.uuid4())], context())
        seen: list[RecordedEvent] = []

        class Counting:
            name = "counting"
            tables: tuple[str, ...] = ()

            async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
                seen.extend(events)

        store.projections = (Counting(),)
        assert await store.rebuild_projections() == 7
        assert [e.position for e in seen] == sorted(e.position for e in seen)


class KeepingNothing:
    name = "nothing"
    tables: tuple[str, ...] = ()

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await conn.execute("SELECT 1")


class TestPostgresEventStore(EventStoreContract):
    # Without projections an append commits by its one statement; with one, in a transaction around it and the
    # projection's writes: both ways keep the contract.
    @pytest.fixture(params=["without projections", "with a projection"])
    async def store(self, database: str, request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
        await db.migrate(database, [])
        pool = await db.create_pool(database)
        projections = [KeepingNothing()] if request.param == "with a projection" else []
        try:
            yield EventStore(pool, service="intake", types=TYPES, projections=projections)
        finally:
            await pool.close()


async def test_rows_kept_by_apply_to_rows_take_each_version_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE tallies (stream text PRIMARY KEY, seen text[] NOT NULL, version int NOT NULL)")
    reads: list[list[str]] = []

    async def read(conn: Conn, streams: list[str]) -> Sequence[asyncpg.Record]:
        reads.append(streams)
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM tallies WHERE stream = ANY($1) ORDER BY stream FOR UPDATE", streams)
        return rows

    async def write(conn: Conn, changes: RowChanges[str], only_if_new: bool) -> set[str]:
        rows = [(stream, [*(row["seen"] if row else []), *(str(e.version) for e in new)], new[-1].version)
                for stream, row, new in changes]
        written = await conn.fetch(
            """INSERT INTO tallies SELECT s, string_to_array(seen, ','), v
               FROM unnest($1::text[], $2::text[], $3::int[]) AS u(s, seen, v)
               ON CONFLICT (stream) DO UPDATE SET seen = EXCLUDED.seen, version = EXCLUDED.version WHERE $4
               RETURNING stream""",
            [r[0] for r in rows], [",".join(r[1]) for r in rows], [r[2] for r in rows], not only_if_new)
        return {row["stream"] for row in written}

    def events(stream: str, versions: range) -> list[RecordedEvent]:
        return [RecordedEvent(position=0, stream_id=stream, stream_type="case", version=version, event_id=uuid.uuid4(),
                              data=document(uuid.uuid4()), metadata={}, recorded_at=datetime.now(UTC))
                for version in versions]

    async def apply(streams: dict[str, list[RecordedEvent]]) -> dict[str, list[str]]:
        async with db.transaction(pool) as conn:
            await apply_to_rows(conn, streams, read=read, key=lambda row: row["stream"], write=write)
        async with pool.acquire() as conn:
            return {row["stream"]: row["seen"] for row in await conn.fetch("SELECT * FROM tallies")}

    assert await apply({"a": events("a", range(1, 3)), "b": events("b", range(1, 2))}) == {
        "a": ["1", "2"], "b": ["1"]}
    assert reads == [], "streams that begin in the batch are written without a read"
    # Versions applied already (a redelivery, a rebuild overlapping live apply) are skipped; a stream whose first
    # events come again is read, not written over.
    assert await apply({"a": events("a", range(2, 4)), "b": events("b", range(1, 3))}) == {
        "a": ["1", "2", "3"], "b": ["1", "2"]}
    assert reads == [["a", "b"]], "the rows that may exist are read together"
