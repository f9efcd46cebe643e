"""Appends made inside `BatchingEventStore.appends_written_together` (a consumer's batch of deliveries) wait and are
written in one statement when the block ends, and still read as written through the store while they wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import pytest

from eventkit import db
from eventkit.aggregate import AggregateType
from eventkit.batching import BatchingConsumer, BatchingEventStore, LoadsStreams
from eventkit.consumer import Delivery, Verdict, joined_to_delivery, reactions_by_command
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.store import ConcurrencyError
from eventkit.testing import StatementLog, streams_loaded_one_by_one
from eventkit.unit_of_work import UnitOfWork
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted

from .test_consumer import accepted_event
from .test_store import document
from .test_store_batches import context, rows, store_of


class Recording:
    """A projection that notes the streams of each call it gets."""

    name = "recording"
    tables: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        self.calls.append([event.stream_id for event in events])


async def append_one(store: BatchingEventStore, conn: Conn, stream_id: str, expected: int = 0) -> list[RecordedEvent]:
    return await store.append(stream_id, "case", expected, [document(uuid.uuid4())], context(stream_id), conn=conn)


async def events_seen_by(conn: Conn) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM events")
    return count


async def test_appends_in_the_block_are_written_when_it_ends_in_one_write_with_their_projections(
        pool: asyncpg.Pool) -> None:
    projection = Recording()
    store = store_of(pool, projection)
    async with db.transaction(pool) as conn:
        async with store.appends_written_together(conn):
            handed_out = [await append_one(store, conn, f"case-{i}") for i in range(5)]
            assert await events_seen_by(conn) == 0, "nothing written before the block ends"
            assert all(r.position == 0 for recorded in handed_out for r in recorded)
        assert await events_seen_by(conn) == 5
    assert projection.calls == [[f"case-{i}" for i in range(5)]], "one projection pass for the whole block"
    stored = {row["event_id"]: row["position"] for row in await rows(pool, "SELECT event_id, position FROM events")}
    assert {r.event_id: r.position for recorded in handed_out for r in recorded} == stored, \
        "the lists handed out carry the written positions"
    outbox = {row["event_id"] for row in await rows(pool, "SELECT event_id FROM outbox")}
    assert outbox == set(stored)


async def test_a_load_in_the_block_reads_the_streams_waiting_appends_and_leaves_the_others_waiting(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    async with db.transaction(pool) as conn, store.appends_written_together(conn):
        [mine] = await append_one(store, conn, "case-mine")
        await append_one(store, conn, "case-other")
        assert await store.load("case-unrelated", conn=conn) == []
        assert await events_seen_by(conn) == 0, "a load of another stream writes nothing"
        loaded = await store.load("case-mine", conn=conn)
        assert [r.event_id for r in loaded] == [mine.event_id]
        assert await events_seen_by(conn) == 2, "what waited was written, in one statement, before the read"


async def test_a_second_append_to_a_stream_in_the_block_follows_the_first(pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    async with db.transaction(pool) as conn, store.appends_written_together(conn):
        await append_one(store, conn, "case-twice", expected=0)
        await append_one(store, conn, "case-twice", expected=1)
    assert [r.version for r in await store.load("case-twice")] == [1, 2]


async def test_an_append_refused_when_the_block_ends_raises_and_nothing_of_the_block_is_written(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    await store.append("case-moved", "case", 0, [document(uuid.uuid4())], context("case-moved"))

    async def fresh_and_moved() -> None:
        async with db.transaction(pool) as conn, store.appends_written_together(conn):
            await append_one(store, conn, "case-fresh")
            await append_one(store, conn, "case-moved", expected=0)

    with pytest.raises(ConcurrencyError) as raised:
        await fresh_and_moved()
    assert (raised.value.stream_id, raised.value.expected_version, raised.value.actual_version) == ("case-moved", 0, 1)
    assert [row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events")] == ["case-moved"]
    assert len(await rows(pool, "SELECT * FROM outbox")) == 1


async def test_a_writer_committing_the_same_version_while_the_block_writes_gives_a_concurrency_error(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    async with pool.acquire() as rival:
        rival_tx = rival.transaction()
        await rival_tx.start()
        await append_one(store, rival, "case-contested")  # uncommitted: the block's write waits on its key

        async def three_with_the_contested_in_the_middle() -> None:
            async with db.transaction(pool) as conn, store.appends_written_together(conn):
                await append_one(store, conn, "case-a")
                await append_one(store, conn, "case-contested")
                await append_one(store, conn, "case-z")
                asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(rival_tx.commit()))

        with pytest.raises(ConcurrencyError) as raised:
            await three_with_the_contested_in_the_middle()
        assert raised.value.stream_id == "case-contested", "the stream the key collided on, not the block's first"
    assert [row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events")] == ["case-contested"]


async def test_an_error_in_the_block_writes_none_of_its_appends(pool: asyncpg.Pool) -> None:
    projection = Recording()
    store = store_of(pool, projection)

    async def append_then_fail() -> None:
        async with db.transaction(pool) as conn, store.appends_written_together(conn):
            await append_one(store, conn, "case-1")
            raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError, match="handler bug"):
        await append_then_fail()
    assert projection.calls == []
    assert await rows(pool, "SELECT * FROM events") == []
    async with pool.acquire() as conn:
        await append_one(store, conn, "case-after")  # the connection no longer defers: written at once
        assert await events_seen_by(conn) == 1


async def test_a_consumers_batch_writes_its_handlers_appends_at_once_and_a_refused_one_fails_alone(
        pool: asyncpg.Pool) -> None:
    projection = Recording()
    store = store_of(pool, projection)
    refused_case = uuid.uuid4()
    # Its stream is at version 1 already, and its handler always appends as if it were new: refused every time.
    await store.append(f"case-{refused_case}", "case", 0, [document(refused_case)], context("setup"))
    projection.calls.clear()

    async def open_the_case(conn: Conn, delivery: Delivery) -> None:
        await append_one(store, conn, f"case-{delivery.envelope.subject}")

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: open_the_case},
                        batch_scope=store.appends_written_together)
    good = [accepted_event() for _ in range(8)]
    refused = accepted_event(refused_case)
    outcomes = await asyncio.gather(*(consumer.process(event.to_json_bytes())
                                      for event in [*good[:3], refused, *good[3:]]))
    assert [outcome.verdict for outcome in outcomes] == [Verdict.DONE] * 3 + [Verdict.RETRY] + [Verdict.DONE] * 5
    assert max(len(call) for call in projection.calls) > 2, "the batch's appends were written together"
    streams = sorted(row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events"))
    assert streams == sorted([f"case-{refused_case}", *(f"case-{event.subject}" for event in good)]), \
        "each good delivery's event once, the refused one's not at all"
    inbox = {row["message_id"] for row in await rows(pool, "SELECT message_id FROM inbox")}
    assert inbox == {str(event.id) for event in good}


async def test_streams_loaded_ahead_are_read_in_one_statement_and_loads_in_the_block_answered_from_it(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    for version in (1, 2):
        await store.append("case-a", "case", version - 1, [document(uuid.uuid4())], context("case-a"))
    expected = {stream_id: await store.load(stream_id) for stream_id in ("case-a", "case-new", "case-other")}
    async with db.transaction(pool) as conn:
        log = StatementLog(conn)
        async with store.appends_written_together(conn, ["case-a", "case-new", "case-a"]):
            assert await store.load("case-a", conn=conn) == expected["case-a"]
            assert await store.load("case-new", conn=conn) == expected["case-new"] == []
            assert await log.stream_loads() == 0, "answered from what was loaded ahead"
            assert sum("= ANY(" in query for query in log.queries) == 1, "all loaded ahead in one statement"
            assert await store.load("case-other", conn=conn) == expected["case-other"]
            assert await log.stream_loads() == 1, "a stream not named is loaded as ever"
        async with store.appends_written_together(conn):
            await store.load("case-a", conn=conn)
            assert await log.stream_loads() == 2, "nothing is kept past its block"


async def test_a_stream_loaded_ahead_and_appended_to_in_the_block_is_read_again_with_the_append(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    await store.append("case-a", "case", 0, [document(uuid.uuid4())], context("case-a"))
    async with db.transaction(pool) as conn, store.appends_written_together(conn, ["case-a", "case-b"]):
        appended = await append_one(store, conn, "case-a", expected=1)
        await append_one(store, conn, "case-b")
        assert [e.version for e in await store.load("case-a", conn=conn)] == [1, 2]
        assert (await store.load("case-a", conn=conn))[-1].event_id == appended[0].event_id
        assert [e.version for e in await store.load("case-b", conn=conn)] == [1]
    assert [e.version for e in await store.load("case-b")] == [1]


async def test_a_consumers_batch_loads_the_streams_its_handlers_name_in_one_statement(pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    cases = [uuid.uuid4() for _ in range(6)]
    await store.append(f"case-{cases[0]}", "case", 0, [document(cases[0])], context("setup"))

    async def open_the_case_once(conn: Conn, delivery: Delivery) -> None:
        stream_id = f"case-{delivery.envelope.subject}"
        if not await store.load(stream_id, conn=conn):
            await append_one(store, conn, stream_id)

    named = LoadsStreams(open_the_case_once, lambda delivery: [f"case-{delivery.envelope.subject}"])
    for handler, alone in ((named, 0), (open_the_case_once, 6)):
        consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: handler},
                                    batch_scope=store.appends_written_together)
        events = [CaseAccepted(case_id=case, department="cardiology", mode=Mode.ONLINE, screened_by="dr-1")
                  for case in cases]
        assert await streams_loaded_one_by_one(consumer, events) == alone
    versions = {row["stream_id"]: row["n"] for row in await rows(
        pool, "SELECT stream_id, count(*) AS n FROM events GROUP BY stream_id")}
    assert versions == {f"case-{case}": 1 for case in cases}, "the stream that existed was seen as existing"


@dataclass(frozen=True)
class OpenCase:
    case_id: uuid.UUID
    department: str


CASES = AggregateType[int]("case", int, lambda count, _: count + 1)


async def open_case(command: OpenCase, uow: UnitOfWork) -> None:
    await uow.execute(CASES, command.case_id, lambda opened: [] if opened else [document(command.case_id)])


async def test_a_batch_reads_ahead_the_streams_it_saw_a_command_reaction_load(pool: asyncpg.Pool) -> None:
    store = store_of(pool)

    def to_command(delivery: Delivery) -> OpenCase:
        assert isinstance(delivery.data, CaseAccepted)
        return OpenCase(delivery.data.case_id, delivery.data.department)

    reactions = reactions_by_command({CaseAccepted: to_command}, {OpenCase: open_case})
    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: joined_to_delivery(store, reactions[CaseAccepted])},
                                batch_scope=store.appends_written_together)

    def accepted(count: int) -> list[CaseAccepted]:
        return [CaseAccepted(case_id=uuid.uuid4(), department="cardiology", mode=Mode.ONLINE, screened_by="dr-1")
                for _ in range(count)]

    first, later = accepted(5), accepted(5)
    assert await streams_loaded_one_by_one(consumer, first) == 5, "not seen yet: each loaded alone"
    assert await streams_loaded_one_by_one(consumer, later) == 0, "learned: the command's case_id names its stream"
    assert await streams_loaded_one_by_one(consumer, first) == 0
    counts = {row["stream_id"]: row["n"] for row in await rows(
        pool, "SELECT stream_id, count(*) AS n FROM events GROUP BY stream_id")}
    assert counts == {f"case-{event.case_id}": 1 for event in first + later}, "read ahead, decided the same"
