"""Event store append and read rates: eventkit's EventStore beside the `eventsourcing` library's PostgreSQL
application recorder (what a Python user would pick instead), same PostgreSQL, same run, fresh databases.

Appends are new-aggregate saves: one new stream per save holding one event, as a desk records a new case.
eventkit's event is a contract event (CaseAccepted), so each save also writes its outbox row, as in production,
and the outbox relay runs in the same process, leading, publishing what is written to a fresh vhost while the
writers go on (so its CPU counts against eventkit); a second pass has the relay lead in another process, so that
every save sends a NOTIFY to wake it, as a follower replica's do. eventsourcing's application recorder likewise
assigns a notification id (global order), taking its table lock. Each store is measured with one writer and
with several concurrent writers, each measurement made SAVE_ROUNDS times (the median counts).
Reads: loading single streams by id, and reading the whole log in order in batches (several times, the median
counts), both decoded into event objects; eventkit's once its relay has published the saves. Before both, the
ceiling PostgreSQL itself sets here: one-row transactions per second, with and without a NOTIFY (see
commit_ceiling).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import log
from eventkit import db
from eventkit.batching import BatchingEventStore
from eventkit.events import Actor, CommandContext
from eventkit.outbox import OutboxRelay, outbox_status
from eventkit.runtime import wait_until
from eventkit.settings import ServiceSettings
from eventkit.store import EventStore, EventTypes
from eventkit.testing import fresh_database, fresh_vhost
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted

CONCURRENT_WRITERS = 8
READ_BATCH = 5000
# The whole log (2 x count events) is read a few milliseconds long: once is at the mercy of one GC pause or one
# busy moment of the machine, so it is read this many times and the median counts.
WHOLE_LOG_READS = 7
# Likewise the saves (2,000 from 8 writers take under half a second): each measurement is made this many times, on
# new streams each time, and the median counts.
SAVE_ROUNDS = 3
TYPES = EventTypes.of(CaseAccepted)


class AcceptedCase(Aggregate):
    """The same fact as eventkit's CaseAccepted, as an eventsourcing aggregate's creation event."""

    @event("Accepted")
    def __init__(self, department: str, mode: str, screened_by: str) -> None:
        self.department = department
        self.mode = mode
        self.screened_by = screened_by


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("nan")


def _median_rate(events: int, seconds: list[float]) -> float:
    return _rate(events, statistics.median(seconds))


def _save_rates(count: int, one_writer_seconds: list[float], many_writers_seconds: list[float]) -> dict[str, Any]:
    return {"append_1_writer_per_s": _median_rate(count, one_writer_seconds),
            f"append_{CONCURRENT_WRITERS}_writers_per_s": _median_rate(count, many_writers_seconds),
            "append_each_round": {
                "1_writer": [_rate(count, seconds) for seconds in one_writer_seconds],
                f"{CONCURRENT_WRITERS}_writers": [_rate(count, seconds) for seconds in many_writers_seconds]}}


# --- eventkit -----------------------------------------------------------------------------------------

def _accepted() -> CaseAccepted:
    return CaseAccepted(case_id=uuid.uuid4(), department="cardiology", mode=Mode.IN_PERSON, screened_by="physician-1")


async def _eventkit_append(store: EventStore, count: int, writers: int) -> tuple[float, list[str]]:
    streams: list[str] = []

    async def writer(share: int) -> None:
        for _ in range(share):
            data = _accepted()
            stream_id = f"case-{data.case_id}"
            context = CommandContext(actor=Actor("coordinator-1", "coordinator"), correlation_id=str(data.case_id),
                                     causation_id=f"command:{uuid.uuid4()}", command="ScreenCase")
            await store.append(stream_id, "case", 0, [data], context)
            streams.append(stream_id)

    shares = [count // writers + (1 if i < count % writers else 0) for i in range(writers)]
    started = time.perf_counter()
    await asyncio.gather(*(writer(share) for share in shares))
    return time.perf_counter() - started, streams


async def eventkit_rates(count: int, *, relay_here: bool = True) -> dict[str, Any]:
    async with fresh_database("bench_eventkit") as dsn, fresh_vhost() as rabbitmq_url:
        await db.migrate(dsn, [])
        pool = await db.create_pool(dsn, max_size=10)
        relay = OutboxRelay(dsn, rabbitmq_url, service="intake")
        try:
            if relay_here:
                relay.start()
                while not relay.is_leader:  # noqa: ASYNC110 (a flag of the relay's own loop)
                    await asyncio.sleep(0.01)
            # Not started, the relay does not lead: the store NOTIFYs the one that would, elsewhere.
            store = BatchingEventStore(pool, service="intake", types=TYPES, relay=relay,
                                       append_batch_max=ServiceSettings().append_batch_max)
            one: list[float] = []
            many: list[float] = []
            for _ in range(SAVE_ROUNDS):
                seconds, streams = await _eventkit_append(store, count, 1)
                one.append(seconds)
                seconds, more = await _eventkit_append(store, count, CONCURRENT_WRITERS)
                many.append(seconds)
            if not relay_here:
                return _save_rates(count, one, many)
            # Reads are measured alone, once the relay has published what the saves wrote.
            await wait_until(lambda: _nothing_unpublished(pool), timeout=60.0)
            sample = (streams + more)[: min(count, 2000)]
            started = time.perf_counter()
            for stream_id in sample:
                assert len(await store.load(stream_id)) == 1
            load_seconds = time.perf_counter() - started
            read_seconds: list[float] = []
            for _ in range(WHOLE_LOG_READS):
                started = time.perf_counter()
                read = 0
                async for batch in store.read_all(batch=READ_BATCH):
                    read += len(batch)
                read_seconds.append(time.perf_counter() - started)
        finally:
            await relay.stop()
            await pool.close()
    return {**_save_rates(count, one, many), "load_stream_per_s": _rate(len(sample), load_seconds),
            "read_all_events_per_s": _median_rate(read, read_seconds), "events_read": read}


async def _nothing_unpublished(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        backlog, _ = await outbox_status(conn)
    return backlog == 0


# --- eventsourcing ------------------------------------------------------------------------------------

def _eventsourcing_env(dsn: str, pool_size: int) -> dict[str, str]:
    parts = urlsplit(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": str(pool_size),
    }


def _eventsourcing_run(dsn: str, count: int) -> dict[str, Any]:
    """Synchronous, as the library is: runs in a worker thread so the event loop stays free."""
    app: Application[uuid.UUID] = Application(env=_eventsourcing_env(dsn, CONCURRENT_WRITERS))
    try:
        ids: list[uuid.UUID] = []

        def save_one() -> None:
            case = AcceptedCase(department="cardiology", mode="in_person", screened_by="physician-1")
            app.save(case)
            ids.append(case.id)

        one: list[float] = []
        many: list[float] = []
        for _ in range(SAVE_ROUNDS):
            started = time.perf_counter()
            for _ in range(count):
                save_one()
            one.append(time.perf_counter() - started)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=CONCURRENT_WRITERS) as workers:
                for future in [workers.submit(save_one) for _ in range(count)]:
                    future.result()
            many.append(time.perf_counter() - started)

        sample = ids[: min(count, 2000)]
        started = time.perf_counter()
        for aggregate_id in sample:
            app.repository.get(aggregate_id)
        load_seconds = time.perf_counter() - started

        read_seconds: list[float] = []
        for _ in range(WHOLE_LOG_READS):
            started = time.perf_counter()
            read, position = 0, 1
            while True:
                notifications = app.recorder.select_notifications(start=position, limit=READ_BATCH)
                if not notifications:
                    break
                for notification in notifications:
                    app.mapper.to_domain_event(notification)
                read += len(notifications)
                position = notifications[-1].id + 1
            read_seconds.append(time.perf_counter() - started)
    finally:
        app.close()
    return {**_save_rates(count, one, many), "load_stream_per_s": _rate(len(sample), load_seconds),
            "read_all_events_per_s": _median_rate(read, read_seconds), "events_read": read}


async def eventsourcing_rates(count: int) -> dict[str, Any]:
    async with fresh_database("bench_eventsourcing") as dsn:
        return await asyncio.to_thread(_eventsourcing_run, dsn, count)


async def commit_ceiling(count: int) -> dict[str, Any]:
    """What PostgreSQL allows a writer here before any event store: one-row INSERT transactions (BEGIN,
    INSERT, COMMIT), each a durable commit (WAL flush), from 1 and from CONCURRENT_WRITERS connections; then
    the same with a NOTIFY in each transaction, as eventkit's append sends one to wake the outbox relay
    (PostgreSQL serializes the commits of notifying transactions on a database-wide lock, so they cannot
    share WAL flushes)."""
    async with fresh_database("bench_commits") as dsn:
        pool = await db.create_pool(dsn, max_size=CONCURRENT_WRITERS)
        try:
            async with pool.acquire() as conn:
                await conn.execute("CREATE TABLE commits (id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")

            async def writer(share: int, notify: bool) -> None:
                async with pool.acquire() as conn:
                    for _ in range(share):
                        async with conn.transaction():
                            await conn.execute("INSERT INTO commits (id) VALUES ($1)", uuid.uuid4())
                            if notify:
                                await conn.execute("NOTIFY bench_commits")

            rates: dict[str, Any] = {}
            for notify in (False, True):
                for writers in (1, CONCURRENT_WRITERS):
                    shares = [count // writers + (1 if i < count % writers else 0) for i in range(writers)]
                    started = time.perf_counter()
                    await asyncio.gather(*(writer(share, notify) for share in shares))
                    seconds = time.perf_counter() - started
                    label = f"{writers}_writer{'s' if writers > 1 else ''}{'_with_notify' if notify else ''}_per_s"
                    rates[label] = _rate(count, seconds)
        finally:
            await pool.close()
    return rates


async def measure(count: int) -> dict[str, Any]:
    log(f"store: single-row commits, {count} from 1 and from {CONCURRENT_WRITERS} connections")
    ceiling = await commit_ceiling(count)
    log(f"store: commits {ceiling}")
    log(f"store: eventkit EventStore, {count} new-stream appends x2 (1 and {CONCURRENT_WRITERS} writers)")
    eventkit = await eventkit_rates(count)
    log(f"store: eventkit {eventkit}")
    log("store: eventkit again, its relay leading in another process (a NOTIFY per save)")
    notifying = await eventkit_rates(count, relay_here=False)
    log(f"store: eventkit, relay elsewhere {notifying}")
    log(f"store: eventsourcing {Application.__module__} PostgreSQL application recorder, same work")
    library = await eventsourcing_rates(count)
    log(f"store: eventsourcing {library}")
    ratios = {key: round(eventkit[key] / library[key], 2) for key in eventkit
              if key.endswith("_per_s") and library.get(key)}
    return {"count": count, "concurrent_writers": CONCURRENT_WRITERS, "single_row_commits": ceiling,
            "eventkit": eventkit, "eventkit_relay_elsewhere": notifying, "eventsourcing": library,
            "eventkit_over_eventsourcing": ratios,
            "eventkit_relay_elsewhere_over_eventsourcing": {
                key: round(notifying[key] / library[key], 2) for key in notifying
                if key.endswith("_per_s") and library.get(key)}}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)), indent=2))
