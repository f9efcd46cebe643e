"""The outbox relay: publishes every committed event, once confirmed, in the order it was written.

Only one relay per service database is active at a time (a PostgreSQL advisory lock elects it), so
two replicas never race each other and reorder a stream. The event store of its own process wakes it right after
a commit that wrote outbox rows; other processes' transactions NOTIFY it; and it sweeps periodically in case a
wake-up was missed (e.g. while reconnecting, or leadership moved between an append and its commit).
A row is marked published only after the broker confirmed it; after a crash the unconfirmed rows are
sent again (consumers deduplicate on the event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from eventkit import metrics
from eventkit.credentials import user_of
from eventkit.db import Conn
from eventkit.store import OUTBOX_CHANNEL
from eventkit.topology import declare_exchange
from eventkit.worker import BackgroundWorker
from secondopinion_contracts import CONTENT_TYPE, EXCHANGE

log = logging.getLogger(__name__)

_RELAY_LOCK = 0x5EC0_0002


class OutboxRelay(BackgroundWorker):
    """Publishes the outbox in order, one relay active per database (advisory lock). A clean stop lets the batch
    in flight be confirmed and marked, so the next start sends nothing twice; past the grace period it is
    cancelled, and its rows are simply sent again."""

    def __init__(self, dsn: str, rabbitmq_url: str, *, service: str, exchange: str = EXCHANGE,
                 batch_size: int = 500, sweep_interval: float = 1.0, retry_delay: float = 1.0) -> None:
        super().__init__(f"{service}-outbox-relay", sweep_interval=sweep_interval, retry_delay=retry_delay)
        self.dsn = dsn
        self.rabbitmq_url = rabbitmq_url
        self.service = service
        self.exchange_name = exchange
        self.batch_size = batch_size
        self.publish_timeout = 10.0
        self.published_count = 0
        # Every message names its publisher; the broker refuses a user_id that is not the connection's user.
        self.user_id = user_of(rabbitmq_url)
        self.is_leader = False

    def interrupted(self, error: Exception) -> None:
        self.is_leader = False

    async def session(self) -> None:
        await self._lead()

    async def _lead(self) -> None:
        db = await asyncpg.connect(self.dsn)
        broker: AbstractRobustConnection | None = None
        try:
            while not await db.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                self.is_leader = False
                if self.stopping:
                    return
                await asyncio.sleep(self.sweep_interval)
            self.is_leader = True
            await db.add_listener(OUTBOX_CHANNEL, self.wake)
            broker = await aio_pika.connect_robust(self.rabbitmq_url, client_properties={
                "connection_name": f"{self.service}-outbox-relay"})
            channel = await broker.channel(publisher_confirms=True)
            exchange = await declare_exchange(channel, self.exchange_name, passive=True)
            while not self.stopping:
                self.expect_work()
                sent = await self.relay_batch(db, channel, exchange)
                if sent < self.batch_size:
                    await self.wait_for_work()
        finally:
            self.is_leader = False
            if broker is not None:
                with contextlib.suppress(Exception):
                    await broker.close()
            with contextlib.suppress(Exception):
                await db.close(timeout=2)

    async def relay_batch(self, db: Conn, channel: AbstractChannel, exchange: AbstractExchange) -> int:
        rows = await db.fetch(
            "SELECT id, event_id, routing_key, body, headers, correlation_id, created_at FROM outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            metrics.OUTBOX_BACKLOG.labels(self.service).set(0)
            return 0
        # Publishes are pipelined on one channel (the broker keeps their order); the batch waits for their confirms
        # under one deadline (a timer per publish, in the loop's timer heap, cost a few percent of a busy service's
        # CPU). Rows are marked published only up to the first one that was not confirmed in time.
        publishes = [
            asyncio.ensure_future(exchange.publish(
                aio_pika.Message(
                    body=row["body"],
                    content_type=CONTENT_TYPE,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(row["event_id"]),
                    correlation_id=row["correlation_id"],
                    headers=json.loads(row["headers"]),
                    app_id=self.service,
                    user_id=self.user_id,
                ),
                routing_key=row["routing_key"],
                timeout=None,
            ))
            for row in rows
        ]
        try:
            await asyncio.wait(publishes, timeout=self.publish_timeout)
        finally:  # also when the relay is stopped meanwhile: nothing is left publishing on its own
            for publish in publishes:
                publish.cancel()  # only those still waiting for their confirm
        results = await asyncio.gather(*publishes, return_exceptions=True)
        confirmed_ids: list[int] = []
        failure: BaseException | None = None
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failure = (TimeoutError(f"no confirm within {self.publish_timeout} s")
                           if isinstance(result, asyncio.CancelledError) else result)
                break
            confirmed_ids.append(row["id"])
        if confirmed_ids:
            await self.mark_published(db, confirmed_ids)
            self.published_count += len(confirmed_ids)
            metrics.OUTBOX_PUBLISHED.labels(self.service).inc(len(confirmed_ids))
        if failure is not None:
            raise failure
        return len(rows)

    async def mark_published(self, db: Conn, outbox_ids: list[int]) -> None:
        await db.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", outbox_ids)


async def outbox_status(conn: Conn) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest unpublished row)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS backlog, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
        " FROM outbox WHERE published_at IS NULL"
    )
    assert row is not None
    return int(row["backlog"]), float(row["age"])
