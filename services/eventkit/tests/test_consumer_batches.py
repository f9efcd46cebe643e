"""Group commit: deliveries in hand together are handled in one transaction, and whatever fails in such a batch
neither takes the others with it nor leaves anything half-written."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import pytest

from eventkit import db
from eventkit.batching import BatchingConsumer, HandledTogether
from eventkit.consumer import Consumer, Delivery, Outcome, Verdict
from eventkit.db import Conn
from eventkit.store import EventStore, EventTypes
from eventkit.telemetry import current_traceparent
from eventkit.unit_of_work import PostgresUnitOfWork
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.events.intake import CaseAccepted

from .test_consumer import accepted_event
from .test_store import context

Handler = Callable[[Conn, Delivery], Awaitable[None]]


@pytest.fixture
async def pool(database: str, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    (tmp_path / "0001_effects.sql").write_text(
        "CREATE TABLE effects (event_id uuid PRIMARY KEY, transaction_id bigint NOT NULL, trace text, note text,"
        " sequence bigint);")
    await db.migrate(database, [tmp_path])
    pool = await db.create_pool(database)
    try:
        yield pool
    finally:
        await pool.close()


async def record(conn: Conn, delivery: Delivery) -> None:
    await conn.execute("INSERT INTO effects (event_id, transaction_id, trace) VALUES ($1, txid_current(), $2)",
                       delivery.envelope.id, current_traceparent())


async def deliver_together(consumer: Consumer, events: list[CloudEvent]) -> list[Outcome]:
    # Started together, as a prefetch's deliveries are: all are in hand before the first transaction begins.
    return await asyncio.gather(*(consumer.process(event.to_json_bytes()) for event in events))


async def rows(pool: asyncpg.Pool, query: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch(query))


async def test_deliveries_in_hand_together_commit_in_one_transaction_each_with_one_effect(
        pool: asyncpg.Pool) -> None:
    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record})
    events = [accepted_event() for _ in range(20)]
    outcomes = await deliver_together(consumer, events)
    assert [outcome.verdict for outcome in outcomes] == [Verdict.DONE] * 20
    effects = await rows(pool, "SELECT event_id, transaction_id FROM effects")
    assert sorted(str(row["event_id"]) for row in effects) == sorted(str(event.id) for event in events)
    assert len({row["transaction_id"] for row in effects}) == 1, "all twenty in one transaction"
    inbox = await rows(pool, "SELECT message_id FROM inbox")
    assert sorted(row["message_id"] for row in inbox) == sorted(str(event.id) for event in events)


@pytest.mark.parametrize("batch_max", [1, 2])
async def test_no_transaction_holds_more_deliveries_than_the_batch_limit(pool: asyncpg.Pool, batch_max: int) -> None:
    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record}, batch_max=batch_max)
    outcomes = await deliver_together(consumer, [accepted_event() for _ in range(6)])
    assert {outcome.verdict for outcome in outcomes} == {Verdict.DONE}
    per_transaction = Counter(row["transaction_id"] for row in await rows(pool, "SELECT transaction_id FROM effects"))
    assert sum(per_transaction.values()) == 6
    assert max(per_transaction.values()) == batch_max


async def test_a_failing_delivery_in_a_batch_is_retried_alone_and_the_others_commit_once(
        pool: asyncpg.Pool) -> None:
    bad_case = uuid.uuid4()

    async def record_unless_bad(conn: Conn, delivery: Delivery) -> None:
        await record(conn, delivery)  # written first: the rollback must take it back
        if delivery.envelope.subject == str(bad_case):
            raise RuntimeError("handler bug")

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record_unless_bad})
    good = [accepted_event() for _ in range(9)]
    bad = accepted_event(bad_case)
    outcomes = await deliver_together(consumer, [*good[:4], bad, *good[4:]])
    verdicts = [outcome.verdict for outcome in outcomes]
    assert verdicts == [Verdict.DONE] * 4 + [Verdict.RETRY] + [Verdict.DONE] * 5
    assert outcomes[4].reason == "handler-failed"
    effects = await rows(pool, "SELECT event_id FROM effects")
    assert sorted(str(row["event_id"]) for row in effects) == sorted(str(event.id) for event in good)
    inbox = await rows(pool, "SELECT message_id FROM inbox")
    assert str(bad.id) not in {row["message_id"] for row in inbox}, "its retry must find it not yet handled"


async def test_events_already_handled_or_twice_in_one_batch_have_no_second_effect(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:  # no unique key here: a second effect would simply be a second row
        await conn.execute("CREATE TABLE handled (event_id uuid NOT NULL)")

    async def note(conn: Conn, delivery: Delivery) -> None:
        await conn.execute("INSERT INTO handled VALUES ($1)", delivery.envelope.id)

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: note})
    handled_before = accepted_event()
    assert (await consumer.process(handled_before.to_json_bytes())).verdict is Verdict.DONE
    fresh = accepted_event()
    # The same event id under another subject (a forged or mangled copy) escapes the per-case lock, so both
    # copies are in one batch.
    twin = fresh.model_copy(update={"subject": str(uuid.uuid4())})
    outcomes = await deliver_together(consumer, [handled_before, fresh, twin, accepted_event()])
    assert sorted(outcome.verdict.value for outcome in outcomes) == ["done", "done", "duplicate", "duplicate"]
    handled = await rows(pool, "SELECT event_id FROM handled")
    assert len(handled) == 3
    assert len({row["event_id"] for row in handled}) == 3


async def test_a_connection_lost_mid_batch_requeues_the_whole_batch_and_writes_nothing(
        pool: asyncpg.Pool) -> None:
    cut = False

    async def record_and_lose_the_connection_once(conn: Conn, delivery: Delivery) -> None:
        nonlocal cut
        await record(conn, delivery)
        if not cut:
            cut = True
            async with pool.acquire() as other:
                await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            await conn.execute("SELECT 1")  # the server side of this connection is gone

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record_and_lose_the_connection_once})
    outcomes = await deliver_together(consumer, [accepted_event() for _ in range(5)])
    # Handled one by one, each would have passed (the handler cuts only once): a lost database is not the
    # deliveries' fault, and they go back to the queue after a pause instead.
    assert {outcome.verdict for outcome in outcomes} == {Verdict.REQUEUE}
    assert await rows(pool, "SELECT * FROM effects") == []
    assert await rows(pool, "SELECT * FROM inbox") == []


async def test_each_delivery_in_a_batch_is_handled_under_its_own_trace(pool: asyncpg.Pool) -> None:
    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record})
    trace_ids = [uuid.uuid4().hex for _ in range(8)]
    events = [accepted_event().model_copy(update={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
              for trace_id in trace_ids]
    await deliver_together(consumer, events)
    effects = {str(row["event_id"]): row["trace"] for row in await rows(pool, "SELECT * FROM effects")}
    assert len({row["transaction_id"] for row in await rows(pool, "SELECT transaction_id FROM effects")}) == 1
    for event, trace_id in zip(events, trace_ids, strict=True):
        assert effects[str(event.id)].split("-")[1] == trace_id


async def test_batches_of_two_replicas_that_deadlock_are_each_handled_alone(pool: asyncpg.Pool) -> None:
    # Replica A's batch locks 1 then 2, replica B's locks 2 then 1, each waiting until both hold their first lock:
    # PostgreSQL aborts one batch as a deadlock. Alone, each delivery passes.
    lock_of: dict[str, int] = {}
    openers: set[str] = set()
    holding = 0
    both_hold_their_first = asyncio.Event()

    async def lock_then_record(conn: Conn, delivery: Delivery) -> None:
        nonlocal holding
        event_id = str(delivery.envelope.id)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_of[event_id])
        if event_id in openers and not both_hold_their_first.is_set():
            holding += 1
            if holding == 2:
                both_hold_their_first.set()
            await asyncio.wait_for(both_hold_their_first.wait(), 5)
        await record(conn, delivery)

    batches = []
    for first_lock, second_lock in ((1, 2), (2, 1)):
        first, second = sorted((accepted_event() for _ in range(2)), key=lambda event: event.subject)
        lock_of[str(first.id)], lock_of[str(second.id)] = first_lock, second_lock
        openers.add(str(first.id))
        batches.append([first, second])
    replicas = [BatchingConsumer("testsvc", pool, {CaseAccepted: lock_then_record}) for _ in batches]
    outcomes = await asyncio.gather(*(deliver_together(replica, batch)
                                      for replica, batch in zip(replicas, batches, strict=True)))
    assert [outcome.verdict for both in outcomes for outcome in both] == [Verdict.DONE] * 4
    effects = await rows(pool, "SELECT event_id, transaction_id FROM effects")
    assert sorted(str(row["event_id"]) for row in effects) == sorted(str(e.id) for batch in batches for e in batch)
    assert len({row["transaction_id"] for row in effects}) == 3, "one batch committed whole, the other one by one"


async def test_values_postgresql_cannot_store_are_dead_lettered_at_once_and_the_rest_of_the_batch_commits(
        pool: asyncpg.Pool) -> None:
    async def record_the_screener(conn: Conn, delivery: Delivery) -> None:
        assert isinstance(delivery.data, CaseAccepted)
        await conn.execute(
            "INSERT INTO effects (event_id, transaction_id, note, sequence) VALUES ($1, txid_current(), $2, $3)",
            delivery.envelope.id, delivery.data.screened_by, delivery.envelope.sequence)

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: record_the_screener})
    good = [accepted_event() for _ in range(3)]
    # Both legal in the contracts: a NUL in a string (PostgreSQL's text cannot hold it) and an integer beyond
    # 64 bits.
    case_id = uuid.uuid4()
    with_nul = accepted_event(case_id).model_copy(update={"data": {
        **accepted_event(case_id).data, "screened_by": "dr-\x00-1"}})
    too_big = accepted_event().model_copy(update={"sequence": 2**70})
    outcomes = await deliver_together(consumer, [*good, with_nul, too_big])
    assert [outcome.verdict for outcome in outcomes] == [Verdict.DONE] * 3 + [Verdict.DEAD_LETTER] * 2
    assert [outcome.reason for outcome in outcomes[3:]] == ["unstorable-data"] * 2
    assert str(2**70) not in outcomes[4].detail, "the refused value stays out of logs and dead-letter headers"
    effects = await rows(pool, "SELECT event_id FROM effects")
    assert sorted(str(row["event_id"]) for row in effects) == sorted(str(event.id) for event in good)


async def test_a_first_step_handled_together_runs_once_for_a_batch_before_any_delivery_goes_on(
        pool: asyncpg.Pool) -> None:
    calls: list[str] = []

    async def note_all(conn: Conn, deliveries: Sequence[Delivery]) -> list[str]:
        calls.append(f"first {len(deliveries)}")
        await conn.execute("INSERT INTO effects (event_id, transaction_id, note) SELECT id, txid_current(), 'first'"
                           " FROM unnest($1::uuid[]) AS id", [delivery.envelope.id for delivery in deliveries])
        return [f"noted {delivery.envelope.id}" for delivery in deliveries]

    async def then(conn: Conn, delivery: Delivery, noted: str) -> None:
        calls.append("then")
        assert noted == f"noted {delivery.envelope.id}"
        await conn.execute("UPDATE effects SET note = $2 WHERE event_id = $1", delivery.envelope.id, noted)

    consumer = BatchingConsumer("testsvc", pool, {CaseAccepted: HandledTogether(note_all, then)})
    handled_before = accepted_event()
    assert (await consumer.process(handled_before.to_json_bytes())).verdict is Verdict.DONE  # alone: a batch of one
    assert calls == ["first 1", "then"]
    calls.clear()
    events = [accepted_event() for _ in range(5)]
    outcomes = await deliver_together(consumer, [*events, handled_before])
    assert [outcome.verdict for outcome in outcomes] == [Verdict.DONE] * 5 + [Verdict.DUPLICATE]
    assert calls == ["first 5"] + ["then"] * 5, "the first step once, for the deliveries seen for the first time"
    effects = await rows(pool, "SELECT event_id, transaction_id, note FROM effects")
    assert {str(row["event_id"]): row["note"] for row in effects} == {
        str(event.id): f"noted {event.id}" for event in [*events, handled_before]}
    assert len({row["transaction_id"] for row in effects if row["event_id"] != handled_before.id}) == 1


@pytest.mark.parametrize("kind", ["plain", "batching"])
async def test_a_consumed_projection_keeps_the_new_deliveries_before_their_handlers_and_filters_them(
        pool: asyncpg.Pool, kind: str) -> None:
    calls: list[str] = []
    logged_before = accepted_event()

    class Log:
        async def apply(self, conn: Conn, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
            calls.append(f"log {len(deliveries)}")
            await conn.execute("INSERT INTO effects (event_id, transaction_id, note) SELECT id, txid_current(), 'log'"
                               " FROM unnest($1::uuid[]) AS id", [delivery.envelope.id for delivery in deliveries])
            return [delivery for delivery in deliveries if delivery.envelope.subject != logged_before.subject]

    async def react(conn: Conn, delivery: Delivery) -> None:
        calls.append("react")
        await conn.execute("UPDATE effects SET note = 'reacted' WHERE event_id = $1", delivery.envelope.id)

    consumer = (Consumer("testsvc", pool, {CaseAccepted: react}, projections=[Log()]) if kind == "plain" else
                BatchingConsumer("testsvc", pool, {CaseAccepted: react}, projections=[Log()]))
    events = [accepted_event() for _ in range(4)]
    assert (await consumer.process(events[0].to_json_bytes())).verdict is Verdict.DONE
    assert calls == ["log 1", "react"]
    calls.clear()
    outcomes = await deliver_together(consumer, [*events, logged_before])
    assert [outcome.verdict for outcome in outcomes] == [Verdict.DUPLICATE] + [Verdict.DONE] * 4
    expected = ["log 4", *["react"] * 3] if kind == "batching" else ["log 1", "react"] * 3 + ["log 1"]
    assert sorted(calls) == sorted(expected), "once for the deliveries handled together, only the new ones"
    notes = {str(row["event_id"]): row["note"] for row in await rows(pool, "SELECT event_id, note FROM effects")}
    assert notes == {**{str(event.id): "reacted" for event in events}, str(logged_before.id): "log"}


async def test_work_a_unit_of_work_asks_for_before_commit_runs_once_for_the_transaction(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, service="testsvc", types=EventTypes.of())
    seen: list[list[str]] = []

    async def refresh(conn: Conn, items: list[str]) -> None:
        seen.append(sorted(items))
        await conn.execute("INSERT INTO effects (event_id, transaction_id, note) VALUES ($1, txid_current(), $2)",
                           uuid.uuid4(), ",".join(sorted(items)))

    async with db.transaction(pool) as conn:
        for case in ("b", "a"):
            await PostgresUnitOfWork(store, context(), conn=conn).before_commit(refresh, case)
        assert seen == []
    assert seen == [["a", "b"]]
    async with PostgresUnitOfWork(store, context()) as uow:
        await uow.before_commit(refresh, "c")
        await uow.before_commit(refresh, "d")
        await uow.commit()
    assert seen[1:] == [["c", "d"]]
    async with PostgresUnitOfWork(store, context()) as uow:
        await uow.before_commit(refresh, "rolled back")
    assert len(seen) == 2
    assert [row["note"] for row in await rows(pool, "SELECT note FROM effects ORDER BY note")] == ["a,b", "c,d"]
