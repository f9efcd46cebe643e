"""The load generator: complete case flows over HTTP against the four services running as processes (as
`python -m <service> serve` runs them, see bench.serve), at a set arrival rate or flat out.

Each case is driven as the desk would, reacting at once, in person, from the request to the report:
  intake      POST /cases, three documents (application form, referral letter, test results), screening: accept
              -> CaseSubmitted, ConsentVerified, DocumentReceived x3, CaseAccepted
  scheduling  (once it consumed CaseAccepted) propose one open slot, confirm it
              -> SlotsProposed, SlotConfirmed, AppointmentSlipIssued; billing consumes SlotConfirmed -> InvoiceIssued
  billing     the cashier takes the fee at the counter (the invoice id and total come from InvoiceIssued)
              -> PaymentCaptured
  scheduling  (once it consumed PaymentCaptured) the consultation is completed -> ConsultationCompleted
  reporting   (once it consumed ConsultationCompleted) the report is drafted, finalized and handed to the patient
              -> ReportDrafted, ReportFinalized, ReportDelivered (and CaseClosed)
Reporting consumes every event of every service throughout. The fee is paid and the consultation completed
on the consultation day, so the services' clocks are moved to early on that day (bench.serve); every slot
the run books is on it.

Arrivals are open loop at `rate` cases/s (a case starts on time whether or not earlier ones have finished,
so a slow system shows as latency, not as a politely lower load); `rate=None` keeps `concurrency` cases in
flight, flat out. Where a step needs a service to have consumed an event first, the driver waits until the
event is on the bus, then retries the command while the service answers that it does not know yet (10 ms,
doubling up to 250 ms; the retries are counted). A subscriber bound to `#` records every event and when it
arrived. Latencies reported:
- per HTTP route, at the client (the final, successful attempt);
- per hop: an event caused by another (its causationid), from the cause's `time` (its commit, stamped by
  PostgreSQL) to the effect's arrival on the bus; and each "service X acted on event E" wait, from E's
  `time` to the response of the command that needed it;
- bus delivery per event type: `time` -> arrival (outbox relay + broker);
- CaseAccepted -> InvoiceIssued per case (the issue's target; it includes the desk's proposal and
  confirmation, made at once here), and end to end, CaseSubmitted -> ReportDelivered.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from bench.common import CpuMeter, latency_summary, log, profiled
from bench.flow_events import DEPARTMENTS
from bench.serve import OFFSET_VARIABLE
from eventkit.business_calendar import BusinessCalendar, tokyo_datetime
from eventkit.clock import TOKYO
from eventkit.testing import (
    RABBITMQ_MANAGEMENT,
    RABBITMQ_PASSWORD,
    RABBITMQ_USER,
    REQUEST_CLOCK_HEADER,
    bearer,
    fresh_database,
    fresh_vhost,
)
from eventkit.topology import dead_letter_queue, declare_exchange, inbox_queue
from secondopinion_contracts import EXCHANGE

SERVICES = ("intake", "scheduling", "billing", "reporting")
ROOT = Path(__file__).resolve().parent.parent
# The services' "now" when they start: early on the consultation day, 90 minutes before the first slot.
CLOCK_STARTS_AT = clock_time(7, 30)
# When the day's consultations are over: the instant each completion names for itself (bench.serve).
CONSULTATIONS_END_AT = clock_time(17, 30)
SLOT_TIMES = tuple(f"{hour:02d}:{minute:02d}" for hour in range(9, 17) for minute in (0, 30))  # 16, the API's most
SLOT_MINUTES = 30
FIRST_RETRY_SECONDS = 0.01
LAST_RETRY_SECONDS = 0.25
CASE_TIMEOUT = 120.0
DRAIN_TIMEOUT = 120.0
FINAL_EVENT = "ReportDelivered"
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def consultation_day(today: date) -> date:
    """The first business day after `today`: every slot of the run is on it."""
    calendar = BusinessCalendar()
    day = today + timedelta(days=1)
    while not calendar.is_business_day(day):
        day += timedelta(days=1)
    return day


def clock_offset(day: date) -> timedelta:
    return tokyo_datetime(day, CLOCK_STARTS_AT) - datetime.now(UTC)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    port: int
    dsn: str
    process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_services(url: str, logs: Path, offset: timedelta) -> AsyncIterator[dict[str, Service]]:
    """The four services as subprocesses on fresh databases and the given vhost; stopped (SIGTERM) after."""
    async with contextlib.AsyncExitStack() as stack:
        services: dict[str, Service] = {}
        for name in SERVICES:
            dsn = await stack.enter_async_context(fresh_database(f"bench_flow_{name}"))
            services[name] = Service(name, _free_port(), dsn)
        environment = {**os.environ, "RABBITMQ_URL": url, "HTTP_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
                       "APP_PROFILE": "development", OFFSET_VARIABLE: str(offset.total_seconds()),
                       # One client sends every case: a person's write limit would throttle the benchmark itself.
                       "RATE_LIMIT_WRITES": "off"}
        for service in services.values():
            prefix = service.name.upper()
            environment[f"{prefix}_DATABASE_URL"] = service.dsn
            environment[f"{prefix}_HTTP_PORT"] = str(service.port)
        try:
            for service in services.values():
                output = (logs / f"{service.name}.log").open("wb")
                stack.callback(output.close)
                service.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.serve", service.name, env=environment, cwd=ROOT,
                    stdout=output, stderr=output)
            await _wait_ready(services, logs)
            yield services
        finally:
            for service in services.values():
                if service.process is not None and service.process.returncode is None:
                    service.process.send_signal(signal.SIGTERM)
            for service in services.values():
                if service.process is not None:
                    try:
                        await asyncio.wait_for(service.process.wait(), 30)
                    except TimeoutError:
                        service.process.kill()
                        await service.process.wait()


async def _wait_ready(services: dict[str, Service], logs: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        for service in services.values():
            while True:
                assert service.process is not None
                if service.process.returncode is not None:
                    tail = (logs / f"{service.name}.log").read_text()[-2000:]
                    raise RuntimeError(f"{service.name} exited with {service.process.returncode}: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{service.base_url}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service.name} not ready in {timeout}s")
                await asyncio.sleep(0.2)


@dataclass
class Seen:
    envelope: dict[str, Any]
    arrived: float  # epoch seconds

    @property
    def name(self) -> str:
        return str(self.envelope["type"]).split(".")[2]

    @property
    def recorded(self) -> float:
        return datetime.fromisoformat(str(self.envelope["time"]).replace("Z", "+00:00")).timestamp()


@dataclass
class Bus:
    """Every event on the exchange with the moment it arrived; wakes whoever waits for a case's event."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    _waiting: dict[tuple[str, str], asyncio.Future[Seen]] = field(default_factory=dict)
    _connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await declare_exchange(channel, EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._keep, no_ack=True)

    async def _keep(self, message: AbstractIncomingMessage) -> None:
        item = Seen(json.loads(message.body), time.time())
        self.seen.append(item)
        if item.envelope.get("supersededby"):
            return
        waiting = self._future(str(item.envelope["subject"]), item.name)
        if not waiting.done():
            waiting.set_result(item)

    def _future(self, case_id: str, name: str) -> asyncio.Future[Seen]:
        key = (case_id, name)
        if key not in self._waiting:
            self._waiting[key] = asyncio.get_running_loop().create_future()
        return self._waiting[key]

    async def event(self, case_id: str, name: str) -> Seen:
        """The case's first `name` event, once it is on the bus."""
        return await self._future(case_id, name)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class _Unexpected(Exception):
    pass


@dataclass
class Driver:
    services: dict[str, Service]
    bus: Bus
    slots: dict[str, list[str]]
    day: date
    http: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    retries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    case_seconds: list[float] = field(default_factory=list)
    started: int = 0
    completed: int = 0
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def __aenter__(self) -> Driver:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        for name, service in self.services.items():
            self.clients[name] = httpx.AsyncClient(base_url=service.base_url, headers=bearer(subject="bench-desk"),
                                                   timeout=60, limits=limits)
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(self, service: str, route: str, path: str, body: dict[str, Any], expect: int,
                   not_yet: Callable[[httpx.Response], bool] = lambda _: False,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST until the answer is neither "not yet" (the service has not consumed what the command needs)
        nor retryable (409 concurrent_change, 503); the route's latency is the successful attempt's."""
        pause = FIRST_RETRY_SECONDS
        label = f"{service} POST {route}"
        while True:
            started = time.perf_counter()
            response = await self.clients[service].post(path, json=body, headers=headers)
            elapsed = time.perf_counter() - started
            retry = not_yet(response) or response.status_code == 503 or (
                response.status_code == 409 and _code(response) == "concurrent_change")
            if not retry:
                break
            self.retries[label] += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_RETRY_SECONDS)
        if response.status_code != expect:
            raise _Unexpected(f"{label}: HTTP {response.status_code} {response.text[:100]}")
        self.http[label].append(elapsed)
        result: dict[str, Any] = response.json()
        return result

    async def after(self, case_id: str, event: str, who: str, step: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Run `step` once `event` of the case is on the bus; record how long after the event's commit it
        succeeded (the consuming service's reaction time, as the desk experiences it)."""
        seen = await self.bus.event(case_id, event)
        result = await step
        self.waits[f"{event} -> {who}"].append(time.time() - seen.recorded)
        return result

    async def case(self, number: int) -> None:
        self.started += 1
        department = DEPARTMENTS[number % len(DEPARTMENTS)]
        began = time.perf_counter()
        try:
            async with asyncio.timeout(CASE_TIMEOUT):
                await self._flow(department)
            self.completed += 1
            self.case_seconds.append(time.perf_counter() - began)
        except TimeoutError:
            self.failures["timeout"] += 1
        except (httpx.HTTPError, _Unexpected, IndexError) as error:
            self.failures[UUID_PATTERN.sub("<id>", f"{error.__class__.__name__}: {error}")[:160]] += 1

    async def _flow(self, department: str) -> None:
        day = self.day.isoformat()
        submitted = await self.call("intake", "/cases", "/cases", {
            "requester": {"relationship": "self", "name": "Bench Patient", "phone": "03-0000-0000"},
            "patient": {"name": "Bench Patient", "birth_date": "1970-01-01", "deceased": False},
            "mode": "in_person", "department": department, "question": "Second opinion please.",
            "attending_physician": {"name": "Dr. Bench", "institution": "Bench Clinic", "consents": True},
            "wants_treatment_here": False, "complaint_or_litigation": False}, 201)
        case_id = str(submitted["case_id"])
        for kind in ("application_form", "referral_letter", "test_results"):
            await self.call("intake", "/cases/{id}/documents", f"/cases/{case_id}/documents",
                            {"kind": kind, "received_on": day}, 201)
        await self.call("intake", "/cases/{id}/screening", f"/cases/{case_id}/screening",
                        {"decision": "accept"}, 200)
        slot_id = self.slots[department].pop()
        await self.after(case_id, "CaseAccepted", "scheduling takes a proposal", self.call(
            "scheduling", "/cases/{id}/proposals", f"/cases/{case_id}/proposals", {"slot_ids": [slot_id]}, 201,
            not_yet=lambda response: response.status_code == 404))
        await self.call("scheduling", "/cases/{id}/appointment", f"/cases/{case_id}/appointment",
                        {"slot_id": slot_id}, 201)
        invoice = (await self.bus.event(case_id, "InvoiceIssued")).envelope["data"]
        await self.call("billing", "/invoices/{id}/payments", f"/invoices/{invoice['invoice_id']}/payments",
                        {"method": "cash", "amount": invoice["total"]}, 201)
        await self.after(case_id, "PaymentCaptured", "scheduling completes the consultation", self.call(
            "scheduling", "/appointments/{id}/complete", f"/appointments/{invoice['appointment_id']}/complete", {},
            200, not_yet=lambda response: response.status_code == 409 and _code(response) == "not_ready",
            # The consultation is over: a completion's own instant, after every slot of the day.
            headers={REQUEST_CLOCK_HEADER: tokyo_datetime(self.day, CONSULTATIONS_END_AT).isoformat()}))
        await self.after(case_id, "ConsultationCompleted", "reporting takes a draft", self.call(
            "reporting", "/cases/{id}/report", f"/cases/{case_id}/report",
            {"summary": "Surgery is a reasonable choice."}, 201,
            # 404 until reporting has logged any event of the case, 409 until it has logged the completion.
            not_yet=lambda response: response.status_code == 404 or _code(response) == "no_consultation"))
        await self.call("reporting", "/cases/{id}/report/finalize", f"/cases/{case_id}/report/finalize", {}, 200)
        await self.call("reporting", "/cases/{id}/report/delivery", f"/cases/{case_id}/report/delivery",
                        {"channel": "handed_to_patient"}, 200)


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


async def open_slots(client: httpx.AsyncClient, needed: int, day: date) -> dict[str, list[str]]:
    """At least `needed` open slots on `day`, spread over the departments (16 per physician)."""
    per_department = math.ceil(needed / len(DEPARTMENTS)) + 1
    physicians = math.ceil(per_department / len(SLOT_TIMES))

    async def department_slots(department: str) -> list[str]:
        opened: list[str] = []
        for physician in range(physicians):
            response = await client.post(f"/departments/{department}/slots", json={
                "physician_id": f"dr-{department}-{physician}", "from": day.isoformat(), "to": day.isoformat(),
                "start_times": list(SLOT_TIMES), "duration_minutes": SLOT_MINUTES}, timeout=120)
            if response.status_code != 201:
                raise RuntimeError(f"opening slots failed: {response.status_code} {response.text[:300]}")
            opened += [slot["slot_id"] for slot in response.json()["opened"]]
        return opened

    slots = await asyncio.gather(*(department_slots(department) for department in DEPARTMENTS))
    return dict(zip(DEPARTMENTS, slots, strict=True))


def analyse(seen: list[Seen]) -> dict[str, Any]:
    by_id = {str(item.envelope["id"]): item for item in seen}
    hops: dict[str, list[float]] = defaultdict(list)
    delivery: dict[str, list[float]] = defaultdict(list)
    per_case: dict[str, dict[str, Seen]] = defaultdict(dict)
    for item in seen:
        if item.envelope.get("supersededby"):
            continue
        delivery[item.name].append(item.arrived - item.recorded)
        per_case[str(item.envelope["subject"])].setdefault(item.name, item)
        cause = by_id.get(str(item.envelope.get("causationid")))
        if cause is not None:
            hops[f"{cause.name} -> {item.name}"].append(item.arrived - cause.recorded)
    accepted_to_invoice = [case["InvoiceIssued"].arrived - case["CaseAccepted"].recorded
                           for case in per_case.values() if "CaseAccepted" in case and "InvoiceIssued" in case]
    whole_flow = [case[FINAL_EVENT].arrived - case["CaseSubmitted"].recorded
                  for case in per_case.values() if "CaseSubmitted" in case and FINAL_EVENT in case]
    return {
        "events_seen": len(seen),
        "event_types_seen": sorted(delivery),
        "case_accepted_to_invoice_issued": latency_summary(accepted_to_invoice),
        f"case_submitted_to_{FINAL_EVENT}": latency_summary(whole_flow),
        "caused_hops": {hop: latency_summary(values) for hop, values in sorted(hops.items())},
        "bus_delivery": {name: latency_summary(values) for name, values in sorted(delivery.items())},
    }


async def _queue_messages(url: str, queue: str) -> int | None:
    """Ready plus unacknowledged messages of a queue, from the management API."""
    vhost = quote(urlsplit(url).path.lstrip("/") or "/", safe="")
    async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
                                 timeout=10) as client:
        response = await client.get(f"/api/queues/{vhost}/{quote(queue, safe='')}")
    if response.status_code != 200:
        return None
    body = response.json()
    return int(body.get("messages_ready", 0)) + int(body.get("messages_unacknowledged", 0))


async def _reporting_caught_up(url: str, timeout: float) -> float | None:
    """Seconds after the last case until reporting's inbox was empty (its lag behind the flows)."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout:
        # The management API's counts are sampled every few seconds: trust an empty queue seen twice.
        quiet = quiet + 1 if await _queue_messages(url, inbox_queue("reporting")) == 0 else 0
        if quiet >= 2:
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)
    return None


async def run(cases: int, rate: float | None, concurrency: int = 16,
              profile_dir: Path | None = None) -> dict[str, Any]:
    """One load run of `cases` case flows: arriving at `rate` cases/s (open loop), or flat out with
    `concurrency` cases in flight."""
    label = f"{rate:g} cases/s" if rate else f"flat out, {concurrency} cases in flight"
    day = consultation_day(datetime.now(TOKYO).date())
    offset = clock_offset(day)
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as scratch:
        logs = Path(scratch)
        async with fresh_vhost() as url, running_services(url, logs, offset) as services:
            log(f"flows: services up, their clocks at {day} {CLOCK_STARTS_AT:%H:%M} Tokyo; opening {cases} slots")
            async with httpx.AsyncClient(base_url=services["scheduling"].base_url, headers=bearer()) as client:
                slots = await open_slots(client, cases, day)
            bus = Bus(url)
            await bus.start()
            named = {"driver": os.getpid()}
            named.update({name: service.process.pid for name, service in services.items() if service.process})
            meter = CpuMeter(named=named, databases=[service.dsn for service in services.values()])
            log(f"flows: driving {cases} cases, {label}")
            serving = {name: pid for name, pid in named.items() if name != "driver"}
            profile = profile_dir / f"flows-{'rate' if rate else 'flat'}.raw" if profile_dir else None
            async with Driver(services, bus, slots, day) as driver, profiled(profile, serving):
                meter.start()
                started = time.perf_counter()
                if rate:
                    tasks = []
                    for number in range(cases):
                        await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
                        tasks.append(asyncio.create_task(driver.case(number)))
                    await asyncio.gather(*tasks)
                else:
                    numbers = iter(range(cases))

                    async def worker() -> None:
                        for number in numbers:
                            await driver.case(number)

                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                finished = time.perf_counter() - started
                cpu = meter.stop()
                lag = await _reporting_caught_up(url, DRAIN_TIMEOUT)
            await asyncio.sleep(1.0)
            await bus.stop()
            dead = {name: await _queue_messages(url, dead_letter_queue(name)) for name in SERVICES}
    result = {
        "mode": label, "cases": cases, "consultation_day": day.isoformat(),
        "cases_completed": driver.completed, "failures": dict(driver.failures),
        "seconds": round(finished, 1),
        "completed_cases_per_s": round(driver.completed / finished, 2) if finished else None,
        "events_per_s_on_bus": round(len(bus.seen) / finished, 1) if finished else None,
        "case_seconds_at_driver": latency_summary(driver.case_seconds),
        "http": {route: latency_summary(values) for route, values in sorted(driver.http.items())},
        "acted_on_event": {wait: latency_summary(values) for wait, values in sorted(driver.waits.items())},
        "retries_while_a_service_had_not_consumed_yet": dict(driver.retries),
        "reporting_caught_up_after_s": lag,
        "dead_lettered": {name: count for name, count in dead.items() if count},
        **analyse(bus.seen), "cpu": cpu,
    }
    log(f"flows: {label}: {driver.completed}/{cases} cases in {finished:.1f} s, CaseAccepted->InvoiceIssued "
        f"{result['case_accepted_to_invoice_issued']}")
    return result


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen_cases = int(arguments[0]) if arguments else 30
    chosen_rate = float(arguments[1]) if len(arguments) > 1 and arguments[1] != "flat" else None
    print(json.dumps(asyncio.run(run(chosen_cases, chosen_rate)), indent=2, default=str))
