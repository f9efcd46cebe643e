"""Group commit of appends: appends handed in while others commit are written in one statement and one transaction,
and whatever fails in such a batch neither takes the others with it nor leaves anything half-written."""

from __future__ import annotations

import asyncio
import json
import random
import string
import uuid
from collections import Counter
from collections.abc import Sequence

import asyncpg
import pytest
from prometheus_client import REGISTRY

from eventkit import db
from eventkit.batching import BatchingEventStore
from eventkit.db import Conn
from eventkit.events import Actor, CommandContext, RecordedEvent
from eventkit.store import ConcurrencyError, EventTypes, Projection
from eventkit.telemetry import continued_from
from secondopinion_contracts.codes import DeclineReason, Screening
from secondopinion_contracts.events.intake import CaseDeclined, CaseDeclinedV2, DocumentReceived

from .test_store import document

TYPES = EventTypes.of(DocumentReceived, CaseDeclined, CaseDeclinedV2)


def store_of(pool: asyncpg.Pool, *projections: Projection, batch_max: int = 32) -> BatchingEventStore:
    # Each test its own service label, so that the metrics it reads are its own.
    service = "svc" + "".join(random.choices(string.ascii_lowercase, k=10))
    return BatchingEventStore(pool, service=service, types=TYPES, projections=projections,
                              append_batch_max=batch_max)


def context(stream_id: str) -> CommandContext:
    return CommandContext(actor=Actor("nurse-7", "coordinator"), correlation_id=stream_id,
                          causation_id=f"command:{uuid.uuid4()}", command="Test")


async def append_together(store: BatchingEventStore, appends: Sequence[tuple[str, int]]) -> list[object]:
    """Started together, as concurrent commands' appends are: all are handed in before the first batch commits.
    Each result is the append's recorded events or the error it raised."""
    return await asyncio.gather(*(
        store.append(stream_id, "case", expected, [document(uuid.uuid4())], context(stream_id))
        for stream_id, expected in appends), return_exceptions=True)


async def rows(pool: asyncpg.Pool, query: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch(query))


async def transactions_of_events(pool: asyncpg.Pool) -> Counter[int]:
    """How many events each transaction wrote (xmin: the transaction that inserted the row)."""
    return Counter(int(row["xmin"]) for row in await rows(pool, "SELECT xmin::text::bigint AS xmin FROM events"))


def fallbacks(store: BatchingEventStore) -> float:
    return REGISTRY.get_sample_value("secondopinion_append_batch_fallbacks_total", {"service": store.service}) or 0.0


async def test_appends_handed_in_together_commit_in_one_transaction_with_their_outbox_rows(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    results = await append_together(store, [(f"case-{i}", 0) for i in range(10)])
    assert all(isinstance(result, list) and len(result) == 1 for result in results)
    per_transaction = await transactions_of_events(pool)
    assert sum(per_transaction.values()) == 10
    assert len(per_transaction) == 1, "all ten in one transaction"
    outbox = await rows(pool, "SELECT event_id, xmin::text::bigint AS xmin FROM outbox")
    events = {row["event_id"]: row["xmin"]
              for row in await rows(pool, "SELECT event_id, xmin::text::bigint AS xmin FROM events")}
    assert {row["event_id"]: row["xmin"] for row in outbox} == events, "each outbox row in its event's transaction"
    recorded = [result[0] for result in results if isinstance(result, list)]
    assert sorted(r.position for r in recorded) == sorted(
        row["position"] for row in await rows(pool, "SELECT position FROM events"))


@pytest.mark.parametrize("batch_max", [1, 2])
async def test_no_transaction_holds_more_appends_than_the_batch_limit(pool: asyncpg.Pool, batch_max: int) -> None:
    store = store_of(pool, batch_max=batch_max)
    results = await append_together(store, [(f"case-{i}", 0) for i in range(7)])
    assert all(isinstance(result, list) for result in results)
    per_transaction = await transactions_of_events(pool)
    assert sum(per_transaction.values()) == 7
    assert max(per_transaction.values()) == batch_max


async def test_an_append_whose_stream_moved_on_fails_alone_and_the_rest_of_its_batch_commits(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    await store.append("case-moved", "case", 0, [document(uuid.uuid4())], context("case-moved"))
    results = await append_together(store, [("case-a", 0), ("case-b", 0), ("case-moved", 0), ("case-c", 0),
                                            ("case-d", 0)])
    assert isinstance(results[2], ConcurrencyError)
    assert (results[2].stream_id, results[2].expected_version, results[2].actual_version) == ("case-moved", 0, 1)
    assert all(isinstance(result, list) for i, result in enumerate(results) if i != 2)
    assert fallbacks(store) == 0, "the guard refused one append; the batch was not rolled back for it"
    assert [e.version for e in await store.load("case-moved")] == [1]
    streams = Counter(row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events"))
    assert streams == Counter({"case-moved": 1, "case-a": 1, "case-b": 1, "case-c": 1, "case-d": 1})
    assert len(await rows(pool, "SELECT * FROM outbox")) == 5


async def test_two_appends_to_one_stream_handed_in_together_go_in_separate_batches_one_wins(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    # Both decided from version 0 of case-twin. In one statement both would pass the version guard and collide on
    # the unique key, rolling back the whole batch; the second waits for the next batch instead and is refused.
    results = await append_together(store, [("case-first", 0), ("case-twin", 0), ("case-other", 0),
                                            ("case-twin", 0), ("case-last", 0)])
    assert isinstance(results[3], ConcurrencyError)
    assert all(isinstance(result, list) for i, result in enumerate(results) if i != 3)
    assert fallbacks(store) == 0
    assert len(await store.load("case-twin")) == 1
    assert len(await rows(pool, "SELECT * FROM outbox")) == 4


class FailingFor:
    """A projection that refuses the events of one stream, as a view's constraint might."""

    name = "failing"
    tables: tuple[str, ...] = ()

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.calls: list[list[str]] = []

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        self.calls.append([event.stream_id for event in events])
        if any(event.stream_id == self.stream_id for event in events):
            raise ValueError(f"the view refuses {self.stream_id}")


async def test_a_projection_failing_in_a_batch_fails_its_own_append_only(pool: asyncpg.Pool) -> None:
    projection = FailingFor("case-bad")
    store = store_of(pool, projection)
    appends = [("case-0", 0), ("case-1", 0), ("case-bad", 0), ("case-2", 0), ("case-3", 0)]
    results = await append_together(store, appends)
    assert isinstance(results[2], ValueError)
    assert all(isinstance(result, list) for i, result in enumerate(results) if i != 2)
    assert fallbacks(store) == 1
    assert any(len(call) > 1 for call in projection.calls), "the appends met in a batch first"
    assert await store.load("case-bad") == []
    streams = sorted(row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events"))
    assert streams == ["case-0", "case-1", "case-2", "case-3"]
    outbox = {row["event_id"] for row in await rows(pool, "SELECT event_id FROM outbox")}
    assert outbox == {row["event_id"] for row in await rows(pool, "SELECT event_id FROM events")}


async def test_a_connection_lost_mid_batch_fails_every_append_of_it_and_writes_nothing(pool: asyncpg.Pool) -> None:
    cut = False

    class LosingTheConnectionOnce:
        name = "losing"
        tables: tuple[str, ...] = ()

        async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
            nonlocal cut
            if len(events) > 1 and not cut:
                cut = True
                async with pool.acquire() as other:
                    await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
                await conn.execute("SELECT 1")

    store = store_of(pool, LosingTheConnectionOnce())
    await store.append("case-before", "case", 0, [document(uuid.uuid4())], context("case-before"))
    results = await append_together(store, [(f"case-{i}", 0) for i in range(5)])
    # Written one by one, each would have passed (the connection is cut only once): a lost database is not the
    # appends' fault. Each caller gets the error (HTTP answers 503: not recorded, try again).
    assert cut
    assert all(isinstance(result, Exception) and db.is_database_lost(result) for result in results)
    assert fallbacks(store) == 0
    assert [row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events")] == ["case-before"]
    assert len(await rows(pool, "SELECT * FROM outbox")) == 1


async def test_an_append_given_up_before_its_batch_began_is_not_written(pool: asyncpg.Pool) -> None:
    release = asyncio.Event()
    committing = asyncio.Event()

    class HeldOnce:
        name = "held"
        tables: tuple[str, ...] = ()

        async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
            if not release.is_set():
                committing.set()
                await release.wait()

    store = store_of(pool, HeldOnce())
    store._appends.concurrent_batches = 1  # the second batch waits for the first
    first = asyncio.create_task(store.append("case-first", "case", 0, [document(uuid.uuid4())], context("x")))
    await asyncio.wait_for(committing.wait(), 5)
    abandoned = asyncio.create_task(store.append("case-abandoned", "case", 0, [document(uuid.uuid4())], context("y")))
    kept = asyncio.create_task(store.append("case-kept", "case", 0, [document(uuid.uuid4())], context("z")))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    release.set()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    streams = sorted(row["stream_id"] for row in await rows(pool, "SELECT stream_id FROM events"))
    assert streams == ["case-first", "case-kept"]


async def test_each_append_in_a_batch_keeps_its_own_trace_and_its_events_publish_in_order(
        pool: asyncpg.Pool) -> None:
    store = store_of(pool)
    trace_ids = [uuid.uuid4().hex for _ in range(6)]

    async def append_traced(index: int, trace_id: str) -> list[RecordedEvent]:
        with continued_from(f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", "command"):
            declined = CaseDeclinedV2(case_id=uuid.uuid4(), reasons=[DeclineReason.PATIENT_DECEASED],
                                      screening=Screening.AUTOMATIC)
            # Two events, the second published beside its deprecated version: three outbox rows per append.
            return await store.append(f"case-{index}", "case", 0, [document(declined.case_id), declined],
                                      context(f"case-{index}"))

    results = await asyncio.gather(*(append_traced(i, trace_id) for i, trace_id in enumerate(trace_ids)))
    assert max((await transactions_of_events(pool)).values()) > 2, "the appends met in a batch"
    for recorded, trace_id in zip(results, trace_ids, strict=True):
        assert [r.version for r in recorded] == [1, 2]
        assert {r.metadata["traceparent"].split("-")[1] for r in recorded} == {trace_id}
    outbox = await rows(pool, "SELECT body, headers FROM outbox ORDER BY id")
    assert len(outbox) == 18
    sequences: dict[str, list[int]] = {}
    for row in outbox:
        envelope = json.loads(row["body"])
        sequences.setdefault(envelope["subject"], []).append(envelope["sequence"])
        assert json.loads(row["headers"])["traceparent"] == envelope["traceparent"]
    assert list(sequences.values()) == [[1, 2, 2]] * 6, "each stream's events in the order written"


class Noting:
    """A projection that only notes what it was given."""

    name = "noting"
    tables: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.applied: list[RecordedEvent] = []

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        self.applied.extend(events)


@pytest.mark.parametrize("projected", [False, True], ids=["no projections", "a projection"])
async def test_an_append_without_projections_is_committed_by_its_one_statement(database: str,
                                                                                projected: bool) -> None:
    # With nothing else to write in its transaction, the statement that writes the appends is sent outside one and
    # PostgreSQL commits it by itself: one round trip where BEGIN, the statement and COMMIT were three.
    await db.migrate(database, [])
    sent: list[str] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: sent.append(record.query))

    one_connection = await asyncpg.create_pool(database, min_size=1, max_size=1, init=log_queries)
    assert one_connection is not None
    noting = Noting()
    try:
        store = store_of(one_connection, *([noting] if projected else []))
        results = await append_together(store, [("case-1", 0)])
        results += await append_together(store, [(f"case-{i}", 0) for i in range(2, 6)])
        await asyncio.sleep(0)  # asyncpg calls its loggers soon after a statement, not in it
        written = await rows(one_connection, "SELECT stream_id FROM events ORDER BY stream_id")
        published = await rows(one_connection, "SELECT id FROM outbox")
    finally:
        await one_connection.close()
    assert all(isinstance(result, list) for result in results)
    assert [row["stream_id"] for row in written] == [f"case-{i}" for i in range(1, 6)]
    assert len(published) == 5
    appends = [statement for statement in sent if "INSERT INTO events" in statement]
    transaction_control = [statement.strip().rstrip(";").upper() for statement in sent
                           if statement.strip().rstrip(";").upper() in ("BEGIN", "COMMIT")]
    assert len(appends) == 2, "the lone append, then the four handed in together"
    if projected:
        assert transaction_control == ["BEGIN", "COMMIT"] * 2
        assert len(noting.applied) == 5
    else:
        assert transaction_control == []
