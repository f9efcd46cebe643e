"""Each consuming service's event-handling rate, draining a backlog of the events it consumes.

For a service: a fresh vhost and database; its inbox is declared and a backlog published (with confirms)
before it starts; then the service runs in this process exactly as `serve` wires it (build(settings) and
its lifespan: migrations, pool, outbox relay, consumer, and billing's charge worker), and drains the
inbox. The rate comes from its inbox rows' timestamps, as for the floor, so the two are comparable.
Backlogs:
- scheduling: CaseAccepted for distinct cases (each starts a case's scheduling stream);
- billing: SlotConfirmed for distinct appointments (each issues an invoice, published through the outbox);
- reporting: complete case flows (11 events per case, from CaseSubmitted to ConsultationCompleted),
  interleaved stage by stage as live traffic would be, each logged, reacted to and its board row recomputed.
A service whose code does not start (still being written) is reported as pending, not given a number.
"""

from __future__ import annotations

import asyncio
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from fastapi import FastAPI
from prometheus_client import REGISTRY

from bench.common import (
    CpuMeter,
    Outgoing,
    counting_statements,
    inbox_rate,
    log,
    outgoing,
    profiled,
    publish_all,
    queue_depth,
    wait_for_rows,
)
from bench.flow_events import DEPARTMENTS, EVENTS_PER_CASE, case_accepted, case_flow, sequences, slot_confirmed
from eventkit.settings import ServiceSettings
from eventkit.testing import fresh_database, fresh_vhost, make_envelope
from eventkit.topology import dead_letter_queue, declare_inbox

BENCH_OWN_POLL = "SELECT count(*) FROM inbox"


@dataclass(frozen=True)
class Subject:
    service: str
    bindings: tuple[str, ...]
    backlog: Callable[[int], list[Outgoing]]
    describe: str


def _scheduling_backlog(count: int) -> list[Outgoing]:
    return [outgoing(make_envelope(case_accepted(department=DEPARTMENTS[i % len(DEPARTMENTS)])))
            for i in range(count)]


def _billing_backlog(count: int) -> list[Outgoing]:
    return [outgoing(make_envelope(slot_confirmed(), sequence=2)) for _ in range(count)]


def _reporting_backlog(count: int) -> list[Outgoing]:
    cases = max(1, count // EVENTS_PER_CASE)
    today = date.today()
    flows = [case_flow(uuid.uuid4(), today - timedelta(days=i % 60), DEPARTMENTS[i % len(DEPARTMENTS)])
             for i in range(cases)]
    numbered = [list(zip(flow, sequences(flow), strict=True)) for flow in flows]
    return [outgoing(make_envelope(flow[stage][0], sequence=flow[stage][1]))
            for stage in range(EVENTS_PER_CASE) for flow in numbered]


SUBJECTS = (
    Subject("scheduling", ("intake.CaseAccepted.v1",), _scheduling_backlog, "CaseAccepted for distinct cases"),
    Subject("billing", ("scheduling.SlotConfirmed.v1",), _billing_backlog, "SlotConfirmed for distinct appointments"),
    Subject("reporting", ("#",), _reporting_backlog, "complete case flows, 11 events per case, interleaved"),
)


def build_app(service: str, dsn: str, url: str) -> FastAPI:
    """The service's app as `python -m <service> serve` builds it, on the given database and vhost."""
    common: dict[str, Any] = {"RABBITMQ_URL": url, "LOG_LEVEL": "WARNING"}
    settings: ServiceSettings
    if service == "scheduling":
        from scheduling.bootstrap import build as build_scheduling
        from scheduling.settings import SchedulingSettings

        settings = SchedulingSettings(SCHEDULING_DATABASE_URL=dsn, **common)
        return build_scheduling(settings)
    if service == "billing":
        from billing.bootstrap import build as build_billing
        from billing.settings import BillingSettings

        settings = BillingSettings(BILLING_DATABASE_URL=dsn, **common)
        return build_billing(settings)
    if service == "reporting":
        from reporting.bootstrap import build as build_reporting
        from reporting.settings import ReportingSettings

        settings = ReportingSettings(REPORTING_DATABASE_URL=dsn, **common)
        return build_reporting(settings)
    raise ValueError(f"no consuming service {service}")


async def _declare(url: str, service: str, bindings: tuple[str, ...]) -> None:
    connection = await aio_pika.connect(url)
    try:
        await declare_inbox(await connection.channel(), service, bindings)
    finally:
        await connection.close()


async def statements_per_event(subject: Subject, count: int) -> dict[str, float]:
    """A small separate drain with every statement counted: the database round trips one event costs."""
    backlog = subject.backlog(count)
    async with fresh_vhost() as url, fresh_database(f"bench_{subject.service}") as dsn:
        await _declare(url, subject.service, subject.bindings)
        await publish_all(url, backlog)
        app = build_app(subject.service, dsn, url)
        with counting_statements() as counts:
            async with app.router.lifespan_context(app):
                await wait_for_rows(dsn, "inbox", len(backlog), timeout=60.0)
                counts.clear()  # start-up (migrations, calendar) is not per event: count a second batch
                second = subject.backlog(count)
                await publish_all(url, second)
                await wait_for_rows(dsn, "inbox", len(backlog) + len(second), timeout=60.0)
                await asyncio.sleep(1.5)  # let the relay publish what the batch caused
            snapshot = dict(counts)
    for statement in [key for key in snapshot if key.startswith(BENCH_OWN_POLL)]:
        del snapshot[statement]  # the benchmark's own polling, not the service's
    per_event = {statement: round(n / len(second), 2) for statement, n in
                 sorted(snapshot.items(), key=lambda item: -item[1]) if n / len(second) >= 0.05}
    return {"total": round(sum(snapshot.values()) / len(second), 1), **per_event}


async def drain(subject: Subject, count: int, profile: Path | None = None) -> dict[str, Any]:
    backlog = subject.backlog(count)
    async with fresh_vhost() as url, fresh_database(f"bench_{subject.service}") as dsn:
        await _declare(url, subject.service, subject.bindings)
        await publish_all(url, backlog)
        app = build_app(subject.service, dsn, url)
        meter = CpuMeter(databases=[dsn])
        batches_before = _batch_totals(subject.service)
        async with profiled(profile):
            meter.start()
            async with app.router.lifespan_context(app):
                seen = await wait_for_rows(dsn, "inbox", len(backlog), timeout=max(90.0, len(backlog) / 40))
                cpu = meter.stop()
            dead = await queue_depth(url, dead_letter_queue(subject.service))
        rate = await inbox_rate(dsn)
    result = {**rate, "backlog": len(backlog), "dead_lettered": dead, "backlog_is": subject.describe, "cpu": cpu}
    batches, deliveries = (after - before for after, before in zip(_batch_totals(subject.service), batches_before,
                                                                   strict=True))
    if batches:
        result["deliveries_per_transaction"] = round(deliveries / batches, 1)
    if seen < len(backlog):
        result["incomplete"] = f"handled {seen} of {len(backlog)} in time"
    return result


def _batch_totals(service: str) -> tuple[float, float]:
    """(transactions, deliveries) the service's consumer has committed in this process so far."""
    labels = {"service": service}
    return (REGISTRY.get_sample_value("secondopinion_consumer_batch_deliveries_count", labels) or 0.0,
            REGISTRY.get_sample_value("secondopinion_consumer_batch_deliveries_sum", labels) or 0.0)


async def measure(count: int, floor_drain_per_s: float | None, floor_live_per_s: float | None = None,
                  services: tuple[str, ...] = ("scheduling", "billing", "reporting"),
                  profile_dir: Path | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for subject in SUBJECTS:
        if subject.service not in services:
            continue
        log(f"consumers: {subject.service}, backlog of {count} ({subject.describe})")
        try:
            profile = profile_dir / f"consumer-{subject.service}.raw" if profile_dir else None
            result = await drain(subject, count, profile)
        except Exception as error:
            log(f"consumers: {subject.service} did not run: {error!r}")
            results[subject.service] = {"pending": f"{error.__class__.__name__}: {error}"[:500],
                                        "traceback": traceback.format_exc(limit=6)[-2000:]}
            continue
        rate = result.get("events_per_s")
        if rate and floor_drain_per_s:
            result["ratio_to_floor"] = round(rate / floor_drain_per_s, 3)
        if rate and floor_live_per_s:
            # The floor with its publishing in the measured window: like for like for a service that publishes
            # what its deliveries cause (billing: an invoice for each).
            result["ratio_to_live_floor"] = round(rate / floor_live_per_s, 3)
        batched = result.get("deliveries_per_transaction")
        log(f"consumers: {subject.service} {rate} events/s, ratio {result.get('ratio_to_floor')}"
            + (f", {batched} deliveries per transaction" if batched else ""))
        results[subject.service] = result
    return results


if __name__ == "__main__":
    import json
    import os
    import sys

    chosen = tuple(sys.argv[2:]) or ("scheduling", "billing", "reporting")
    where = Path(os.environ["BENCH_PROFILE_DIR"]) if os.environ.get("BENCH_PROFILE_DIR") else None
    counted = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(json.dumps(asyncio.run(measure(counted, None, None, chosen, where)),
                     indent=2, default=str))
