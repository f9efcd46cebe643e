"""Projection rebuild rate with a large log: reporting's case board rebuilt from its received-events log.

Reporting keeps every event of every service in `received_events` and rebuilds its read model (the case
board) from it with `python -m reporting rebuild`, i.e. `reporting.store.rebuild_case_board`. The log is
bulk-loaded with COPY (complete case flows, 11 events per case, spread over two years of submissions),
analyzed as autovacuum would have, and only the rebuild is timed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import CpuMeter, log
from bench.flow_events import DEPARTMENTS, EVENTS_PER_CASE, case_flow, sequences
from eventkit.testing import fresh_database

COPY_BATCH = 50_000
TEMPLATES = 48  # distinct submission dates and departments; ids are fresh per case
COLUMNS = ("event_id", "case_id", "source", "event_name", "event_version", "sequence", "occurred_at", "actor_id",
           "actor_role", "causation_id", "data")
_SENTINELS = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 4))
CASE, APPOINTMENT, INVOICE = (uuid.UUID(text) for text in _SENTINELS)

Row = tuple[Any, ...]


def _templates() -> list[list[tuple[str, str, int, int, timedelta, str]]]:
    """Per template, each event as (source, name, version, sequence, offset from submission, data JSON with
    placeholder ids), so a million rows cost string replacements instead of model validations."""
    first = date(2024, 4, 1)
    templates = []
    for index in range(TEMPLATES):
        submitted_on = first + timedelta(days=15 * index)
        flow = case_flow(CASE, submitted_on, DEPARTMENTS[index % len(DEPARTMENTS)])
        appointment = getattr(flow[6], "appointment_id")  # noqa: B009 - SlotConfirmed
        invoice = getattr(flow[8], "invoice_id")  # noqa: B009 - InvoiceIssued
        events = []
        for step, (event, sequence) in enumerate(zip(flow, sequences(flow), strict=True)):
            text = json.dumps(event.model_dump(mode="json"))
            text = text.replace(str(appointment), str(APPOINTMENT)).replace(str(invoice), str(INVOICE))
            events.append((event.SERVICE, event.NAME, event.VERSION, sequence, timedelta(hours=6 * step), text))
        templates.append(events)
    return templates


def rows(count: int) -> Iterator[Row]:
    templates = _templates()
    base = datetime(2024, 4, 1, tzinfo=UTC)
    cases = count // EVENTS_PER_CASE
    for case_number in range(cases):
        template = templates[case_number % TEMPLATES]
        case_id, appointment_id, invoice_id = uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4())
        case_text = str(case_id)
        submitted = base + timedelta(days=15 * (case_number % TEMPLATES))
        previous: str | None = None
        for source, name, version, sequence, offset, text in template:
            event_id = uuid.uuid4()
            data = (text.replace(str(CASE), case_text).replace(str(APPOINTMENT), appointment_id)
                    .replace(str(INVOICE), invoice_id))
            yield (event_id, case_id, source, name, version, sequence, submitted + offset, f"{source}-staff",
                   "coordinator", previous or f"command:{uuid.uuid4()}", data)
            previous = str(event_id)


async def load(dsn: str, count: int) -> int:
    conn = await asyncpg.connect(dsn)
    loaded = 0
    try:
        batch: list[Row] = []
        for row in rows(count):
            batch.append(row)
            if len(batch) >= COPY_BATCH:
                await conn.copy_records_to_table("received_events", records=batch, columns=COLUMNS)
                loaded += len(batch)
                batch = []
        if batch:
            await conn.copy_records_to_table("received_events", records=batch, columns=COLUMNS)
            loaded += len(batch)
        await conn.execute("ANALYZE received_events")
    finally:
        await conn.close()
    return loaded


async def measure(count: int) -> dict[str, Any]:
    """Load `count` events, then rebuild as `python -m reporting rebuild` does (the runtime started without
    relay or consumer, which also fills the business-day calendar the board's figures are counted in)."""
    from reporting.bootstrap import runtime_for
    from reporting.settings import ReportingSettings

    async with fresh_database("bench_rebuild") as dsn:
        runtime = runtime_for(ReportingSettings(REPORTING_DATABASE_URL=dsn, LOG_LEVEL="WARNING"))
        await runtime.start(relay=False, consume=False)
        try:
            log(f"rebuild: bulk-loading {count} events into reporting's received_events (COPY)")
            started = time.perf_counter()
            loaded = await load(dsn, count)
            load_seconds = time.perf_counter() - started
            log(f"rebuild: loaded {loaded} events in {load_seconds:.1f} s; rebuilding the case board")
            meter = CpuMeter(databases=[dsn])
            meter.start()
            started = time.perf_counter()
            rebuilt = await runtime.rebuild()
            seconds = time.perf_counter() - started
            cpu = meter.stop()
            async with runtime.pool.acquire() as conn:
                cases = int(await conn.fetchval("SELECT count(*) FROM case_board"))
        finally:
            await runtime.stop()
    log(f"rebuild: {rebuilt} events, {cases} cases in {seconds:.1f} s = {rebuilt / seconds:.0f} events/s")
    return {"projection": "reporting case_board (ReportingRuntime.rebuild, as `python -m reporting rebuild`)",
            "events": rebuilt, "cases": cases, "seconds": round(seconds, 2),
            "events_per_s": round(rebuilt / seconds, 1), "load_seconds": round(load_seconds, 1), "cpu": cpu}


if __name__ == "__main__":
    import sys

    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)), indent=2))
