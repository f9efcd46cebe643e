"""The outbox relay publishes every committed event, in stream order, even across crashes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import aio_pika
import asyncpg
import pytest

from eventkit import db
from eventkit.db import Conn
from eventkit.events import Actor, CommandContext
from eventkit.outbox import OutboxRelay
from eventkit.runtime import wait_until
from eventkit.store import OUTBOX_CHANNEL, EventStore, EventTypes
from eventkit.testing import EventCollector
from secondopinion_contracts.codes import DocumentKind
from secondopinion_contracts.events.intake import DocumentReceived


@pytest.fixture
async def store(database: str) -> AsyncIterator[EventStore]:
    await db.migrate(database, [])
    pool = await db.create_pool(database)
    try:
        yield EventStore(pool, service="intake", types=EventTypes.of(DocumentReceived))
    finally:
        await pool.close()


async def append_many(store: EventStore, streams: int, per_stream: int) -> list[uuid.UUID]:
    ids = []
    for stream in range(streams):
        context = CommandContext(actor=Actor(id="desk", role="coordinator"), correlation_id=f"case-{stream}")
        for version in range(per_stream):
            recorded = await store.append(f"case-{stream}", "case", version, [document_received()], context)
            ids.append(recorded[0].event_id)
    return ids


async def test_relay_publishes_every_event_persistently_in_stream_order(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    ids = await append_many(store, streams=3, per_stream=4)
    relay = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.2)
    relay.start()
    try:
        await collector.wait_count(len(ids))
    finally:
        await relay.stop()
        await collector.stop()
    assert sorted(str(e.id) for e in collector.envelopes) == sorted(str(i) for i in ids)
    for stream in range(3):
        sequences = [e.sequence for e in collector.envelopes if e.id in set(ids[stream * 4:(stream + 1) * 4])]
        assert sequences == [1, 2, 3, 4]
    for message in collector.messages:
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/cloudevents+json"
        envelope = collector.envelopes[collector.messages.index(message)]
        assert message.message_id == str(envelope.id)
        assert message.correlation_id == envelope.correlationid == f"case-{ids.index(envelope.id) // 4}"
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_relay_wakes_on_notify_for_events_appended_while_it_runs(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    relay = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=60)  # no sweep: only NOTIFY
    relay.start()
    try:
        await asyncio.sleep(0.5)
        await append_many(store, streams=1, per_stream=2)
        await collector.wait_count(2, timeout=5)
    finally:
        await relay.stop()
        await collector.stop()


async def test_a_relay_leading_in_this_process_is_woken_after_each_commit_and_no_notify_is_sent(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    relay = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=60)  # no sweep: only the wake-up
    store.relay = relay
    listener = await asyncpg.connect(database)
    notified: list[str] = []
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: notified.append(args[2]))
    relay.start()
    try:
        await wait_until(lambda: relay.is_leader)
        await append_many(store, streams=1, per_stream=2)  # each append its own transaction
        context = CommandContext(actor=Actor(id="desk", role="coordinator"), correlation_id="case-in-transaction")
        async with db.transaction(store.pool) as conn:  # the consumer's and the handlers' transaction
            for version in range(2):
                await store.append("case-in-transaction", "case", version, [document_received()], context, conn=conn)
            await asyncio.sleep(0.3)  # a relay woken before the commit looks now, finds nothing and sleeps a minute
        await collector.wait_count(4, timeout=5)
        await listener.fetchval("SELECT 1")  # a NOTIFY of those commits would have reached the listener by now
        assert notified == []
    finally:
        await relay.stop()
        await collector.stop()
        await listener.close()


async def test_a_writer_whose_relay_does_not_lead_notifies_the_one_that_does(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    leader = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=60)
    store.relay = OutboxRelay(database, rabbitmq_url, service="intake")  # this replica's, not started: not leading
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    leader.start()
    try:
        await wait_until(lambda: leader.is_leader)
        await append_many(store, streams=1, per_stream=2)
        await collector.wait_count(2, timeout=5)
    finally:
        await leader.stop()
        await collector.stop()


def document_received() -> DocumentReceived:
    return DocumentReceived(case_id=uuid.uuid4(), document_id=uuid.uuid4(), kind=DocumentKind.TEST_RESULTS,
                            received_on=date(2026, 12, 1))


class CrashBeforeMarking(OutboxRelay):
    """Publishes (and gets confirms) but dies before recording that it did: the worst moment."""

    async def mark_published(self, db: Conn, outbox_ids: list[int]) -> None:
        raise ConnectionResetError("relay killed between confirm and commit")


async def test_a_relay_killed_between_confirm_and_commit_loses_nothing_after_restart(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    ids = await append_many(store, streams=2, per_stream=3)
    crashing = CrashBeforeMarking(database, rabbitmq_url, service="intake", sweep_interval=0.2, retry_delay=0.1)
    crashing.start()
    await collector.wait_count(len(ids))
    await crashing.stop()
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == len(ids)

    restarted = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.2)
    restarted.start()
    try:
        await collector.wait_for(lambda _: restarted.published_count >= len(ids))
    finally:
        await restarted.stop()
        await collector.stop()
    received = {str(e.id) for e in collector.envelopes}
    assert received == {str(i) for i in ids}  # every event arrived; duplicates are the consumers' inbox's job
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_rows_not_confirmed_by_the_batch_deadline_stay_unpublished_and_go_again(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    ids = await append_many(store, streams=2, per_stream=3)
    relay = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.2, retry_delay=0.1)
    relay.publish_timeout = 0.0  # no confirm can arrive in time
    relay.start()
    try:
        await asyncio.sleep(0.5)  # several batches tried and given up
        assert relay.published_count == 0
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == len(ids)
        relay.publish_timeout = 10.0
        await collector.wait_for(lambda _: relay.published_count >= len(ids))
    finally:
        await relay.stop()
        await collector.stop()
    assert relay.published_count == len(ids)
    assert {str(e.id) for e in collector.envelopes} == {str(i) for i in ids}
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_relay_waits_for_an_unreachable_broker_then_publishes(
        store: EventStore, database: str, rabbitmq_url: str) -> None:
    ids = await append_many(store, streams=1, per_stream=2)
    unreachable = "amqp://guest:guest@127.0.0.1:5999/"
    relay = OutboxRelay(database, unreachable, service="intake", sweep_interval=0.2, retry_delay=0.1)
    relay.start()
    await asyncio.sleep(1.0)
    assert relay.published_count == 0
    assert relay.running  # still trying, not dead
    await relay.stop()
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    relay = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.2)
    relay.start()
    try:
        await collector.wait_count(len(ids))
    finally:
        await relay.stop()
        await collector.stop()


async def test_only_one_relay_per_database_is_active(store: EventStore, database: str, rabbitmq_url: str) -> None:
    first = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.1)
    second = OutboxRelay(database, rabbitmq_url, service="intake", sweep_interval=0.1)
    first.start()
    second.start()
    try:
        await asyncio.sleep(1.0)
        assert [first.is_leader, second.is_leader].count(True) == 1
        leader, standby = (first, second) if first.is_leader else (second, first)
        await leader.stop()
        for _ in range(50):
            if standby.is_leader:
                break
            await asyncio.sleep(0.1)
        assert standby.is_leader
    finally:
        await first.stop()
        await second.stop()
