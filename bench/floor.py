"""The raw floor on this machine: what the bus and the database allow with no business logic at all.

One event = aio-pika publish with confirms to the topic exchange, routed to a quorum queue declared
exactly like a service's inbox, consumed with the services' prefetch, and one asyncpg transaction that
inserts the message id into an inbox table, then ack. Measured twice:
- drain: a backlog of N messages is published first, then consumed;
- live: a publisher sends N messages flat out while the consumer runs (both in this process, as a
  service's relay and consumer share one).
The rate comes from the inbox rows' timestamps (see common.inbox_rate).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.common import CpuMeter, Outgoing, inbox_rate, log, outgoing, publish_all, wait_for_rows
from eventkit.testing import fresh_database, fresh_vhost, make_envelope
from eventkit.topology import declare_inbox
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted

SERVICE = "floor"
ROUTING_KEY = "floor.Ping.v1"
PREFETCH = 32  # the services' default CONSUMER_PREFETCH
POOL_SIZE = 10  # the services' default DB_POOL_MAX

INBOX = """CREATE TABLE inbox (
    message_id   text PRIMARY KEY,
    event_type   text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now())"""


def messages(count: int) -> Iterator[Outgoing]:
    """Bodies the size of a real event (a CaseAccepted envelope), each with its own id."""
    template = outgoing(make_envelope(CaseAccepted(case_id=uuid.uuid4(), department="cardiology",
                                                   mode=Mode.IN_PERSON, screened_by="physician-1"),
                                      time=datetime.now(UTC)))
    for _ in range(count):
        yield Outgoing(ROUTING_KEY, template.body, str(uuid.uuid4()), template.correlation_id)


class FloorConsumer:
    """Consume, one transaction per message, ack after commit: the least any service does per event."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await declare_inbox(channel, SERVICE, [ROUTING_KEY])
        await queue.consume(self._handle)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO inbox (message_id, event_type) VALUES ($1, $2)",
                               message.message_id, message.routing_key)
        await message.ack()

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def declare(url: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        await declare_inbox(await connection.channel(), SERVICE, [ROUTING_KEY])
    finally:
        await connection.close()


async def _prepare(dsn: str) -> asyncpg.Pool:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(INBOX)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
    assert pool is not None
    return pool


async def drain(count: int) -> dict[str, Any]:
    async with fresh_vhost() as url, fresh_database("bench_floor") as dsn:
        pool = await _prepare(dsn)
        await declare(url)
        started = time.perf_counter()
        await publish_all(url, messages(count))
        publish_seconds = time.perf_counter() - started
        consumer = FloorConsumer(url, pool)
        meter = CpuMeter(databases=[dsn])
        meter.start()
        await consumer.start()
        try:
            seen = await wait_for_rows(dsn, "inbox", count, timeout=max(60.0, count / 200))
            cpu = meter.stop()
        finally:
            await consumer.stop()
            await pool.close()
        rate = await inbox_rate(dsn)
    if seen < count:
        raise RuntimeError(f"floor drain handled only {seen} of {count} messages")
    return {**rate, "backlog_publish_per_s": round(count / publish_seconds, 1), "cpu": cpu}


async def live(count: int) -> dict[str, Any]:
    async with fresh_vhost() as url, fresh_database("bench_floor") as dsn:
        pool = await _prepare(dsn)
        consumer = FloorConsumer(url, pool)
        await consumer.start()
        meter = CpuMeter(databases=[dsn])
        meter.start()
        try:
            started = time.perf_counter()
            await publish_all(url, messages(count))
            publish_seconds = time.perf_counter() - started
            seen = await wait_for_rows(dsn, "inbox", count, timeout=max(60.0, count / 200))
            cpu = meter.stop()
        finally:
            await consumer.stop()
            await pool.close()
        rate = await inbox_rate(dsn)
    if seen < count:
        raise RuntimeError(f"floor live run handled only {seen} of {count} messages")
    return {**rate, "publish_per_s": round(count / publish_seconds, 1), "cpu": cpu}


async def measure(count: int) -> dict[str, Any]:
    log(f"floor: draining a backlog of {count} messages")
    drained = await drain(count)
    log(f"floor: drain {drained['events_per_s']} events/s; now {count} messages with a live publisher")
    running = await live(count)
    log(f"floor: live {running['events_per_s']} events/s")
    return {"drain": drained, "live": running, "prefetch": PREFETCH, "pool_size": POOL_SIZE}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)), indent=2))
