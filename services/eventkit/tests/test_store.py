"""The PostgreSQL event store beyond the contract every backend keeps (test_contract.py): a caller's failed
transaction, rebuilding projections, and the read-model helper `apply_to_rows`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import ClassVar

import asyncpg
import pytest

from eventkit import db
from eventkit.db import Conn
from eventkit.events import Actor, CommandContext, PrivateEvent, RecordedEvent
from eventkit.store import EventStore, EventTypes, RowChanges, apply_to_rows
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


class KeepingNothing:
    name = "nothing"
    tables: tuple[str, ...] = ()

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await conn.execute("SELECT 1")


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, service="intake", types=TYPES)


async def test_a_failed_transaction_leaves_neither_event_nor_outbox_row(store: EventStore) -> None:
    async def crash_before_commit() -> None:
        async with store.transaction() as conn:
            await store.append("case-e", "case", 0, [document(uuid.uuid4())], context(), conn=conn)
            raise RuntimeError("crash after the append, before commit")

    with pytest.raises(RuntimeError):
        await crash_before_commit()
    assert await store.load("case-e") == []
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_rebuild_replays_every_event_through_the_projections(store: EventStore) -> None:
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
