"""The desk at work: whole second-opinion cases driven through the four services' HTTP APIs, every command
kept in a history with what each attempt got back.

A case goes the way the hospital's guide describes: submitted, documents received, accepted at screening;
scheduling (told by intake's CaseAccepted) proposes a slot and confirms it; billing (told by SlotConfirmed)
invoices; the fee is paid at the counter (in person) or charged to the card after the consultation (online);
scheduling (told by PaymentCaptured) lets the consultation complete; reporting (told of everything) takes the
report through draft, final and delivery and closes the case. Every service runs on a clock fixed at 09:00
in Tokyo on the consultation day (tests.faults.serve), so the whole flow fits in one run at any hour.

Each command carries a token whose subject is unique to it: the checker finds what the command did in the
service's event store by that actor id, and so can tell a command applied once from one lost or applied twice.
Each command also carries an Idempotency-Key of its own, the same on every attempt. A command that met a fault
(503, refused or reset connection, timeout) is retried with that key, as a real client would: the service does
it at most once, and a retry of one that was recorded (its first answer lost, or a 503 after its commit) gets
what was recorded (`code` "recorded_before"), from which the flow rebuilds what it needs by reading the service.
A 409 saying the key is still in flight is waited out. The checker finds no command both refused and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import httpx

from billing.domain import invoice_id_for
from eventkit.testing import REQUEST_CLOCK_HEADER, bearer

from .cluster import CONSULTED_AT, Cluster

CONSULTATION_DAY = date(2026, 12, 8)  # a Tuesday
DEPARTMENTS = ("cardiology", "neurology", "oncology", "nephrology")
FEES = {"in_person": 33_000, "online": 44_000}
# Waiting for a consequence in another service spans whatever fault is going on (a cold broker start
# takes tens of seconds on a busy machine).
STEP_TIMEOUT = 180.0


class Outcome(enum.StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # a 4xx: the command was refused and recorded nothing
    UNAVAILABLE = "unavailable"  # 503 with Retry-After: nothing was recorded, try again
    UNREACHABLE = "unreachable"  # the connection was refused: the request never arrived
    INDETERMINATE = "indeterminate"  # sent, but no answer (reset, timeout): it may or may not have happened
    ERROR = "error"  # another 5xx: a bug, whatever it did


FAULTED = (Outcome.UNAVAILABLE, Outcome.UNREACHABLE, Outcome.INDETERMINATE, Outcome.ERROR)


@dataclass
class Attempt:
    outcome: Outcome
    status: int | None = None
    retry_after: str | None = None
    detail: str = ""


@dataclass
class Command:
    """One command as the desk meant it, however many times it had to be sent."""

    case: str
    service: str
    name: str
    actor: str
    attempts: list[Attempt] = field(default_factory=list)
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    recovered_from_store: bool = False  # answered "recorded_before": rebuilt by reading the service
    replayed: int = 0  # answers the service gave again for the key (Idempotent-Replayed)

    @property
    def acknowledged(self) -> bool:
        return any(attempt.outcome is Outcome.OK for attempt in self.attempts)

    @property
    def faulted(self) -> bool:
        return any(attempt.outcome in FAULTED for attempt in self.attempts)

    @property
    def rejected(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].outcome is Outcome.REJECTED


@dataclass
class CaseRun:
    """One case's ids as they become known, and where its flow got to."""

    key: str
    mode: str = "in_person"
    department: str = "cardiology"
    case_id: str | None = None
    slot_id: str | None = None
    appointment_id: str | None = None
    extra_documents: int = 0  # copies of the test results received beyond the three documents every case needs
    steps_done: list[str] = field(default_factory=list)
    finished: bool = False
    error: str | None = None

    @property
    def physician(self) -> str:
        return f"dr-{self.key}"

    @property
    def invoice_id(self) -> str:
        assert self.appointment_id is not None
        return str(invoice_id_for(uuid.UUID(self.appointment_id)))


class FlowFailed(AssertionError):
    pass


def _in_flight(attempt: Attempt) -> bool:
    """A 409 saying an earlier attempt with the command's key is still being answered (or was cut off mid-way):
    not a refusal; the same key is sent again shortly."""
    return attempt.status == 409 and "idempotency_key_in_flight" in attempt.detail


class Desk:
    """Sends the desk's commands to the cluster (a live replica of the service each time) and keeps the history."""

    def __init__(self, cluster: Cluster, *, retry_after_cap: float = 0.5) -> None:
        self.cluster = cluster
        self.retry_after_cap = retry_after_cap
        self.commands: list[Command] = []
        self.runs: list[CaseRun] = []
        self.missing_retry_after = 0
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0),
                                         limits=httpx.Limits(max_connections=64, max_keepalive_connections=0))
        self._pools: dict[str, asyncpg.Pool] = {}
        self._flows: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        for flows in self._flows:
            if not flows.done():
                flows.cancel()
            with contextlib.suppress(BaseException):
                await flows
        await self._client.aclose()
        for pool in self._pools.values():
            await pool.close()

    async def __aenter__(self) -> Desk:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # --- reading a service's store (to recover the result of a command whose answer was lost) ----------

    async def store_rows(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                pool = self._pools.get(service)
                if pool is None:
                    pool = self._pools[service] = await asyncpg.create_pool(
                        self.cluster.databases[service], min_size=0, max_size=4)
                async with pool.acquire(timeout=10) as conn:
                    return list(await conn.fetch(query, *args))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                # The database itself may be the fault under way.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def effects_of(self, service: str, actor: str) -> list[asyncpg.Record]:
        return await self.store_rows(
            service, "SELECT stream_id, event_type FROM events WHERE metadata->'actor'->>'id' = $1 ORDER BY position",
            actor)

    # --- sending ------------------------------------------------------------------------------------------

    async def send(self, method: str, service: str, path: str, actor: str, body: dict[str, Any] | None,
                   idempotency_key: str | None = None, at: str | None = None) -> tuple[Attempt, httpx.Response | None]:
        url = self.cluster.url(service) + path
        headers = bearer(subject=actor)
        if at is not None:  # the request's own instant, on clocks that otherwise stand still
            headers[REQUEST_CLOCK_HEADER] = at
        if idempotency_key is not None:
            headers["Idempotency-Key"] = f'"{idempotency_key}"'
        try:
            response = await self._client.request(method, url, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            return Attempt(Outcome.UNREACHABLE, detail=error.__class__.__name__), None
        except httpx.TransportError as error:
            return Attempt(Outcome.INDETERMINATE, detail=error.__class__.__name__), None
        status = response.status_code
        if status < 300:
            return Attempt(Outcome.OK, status), response
        if status == 503:
            return Attempt(Outcome.UNAVAILABLE, status, response.headers.get("retry-after"), response.text[:300]), None
        if status >= 500:
            return Attempt(Outcome.ERROR, status, detail=response.text[:300]), None
        return Attempt(Outcome.REJECTED, status, detail=response.text[:300]), response

    async def command(self, run: CaseRun, service: str, name: str, path: str, body: dict[str, Any] | None = None,
                      *, recover: Callable[[Command], Awaitable[dict[str, Any] | None]] | None = None,
                      step: str | None = None, at: str | None = None) -> dict[str, Any]:
        """Send until the command is known to have happened once; returns its answer (or, when the answer was
        lost, what `recover` rebuilds from the service). A refusal (4xx) raises FlowFailed."""
        command = Command(run.key, service, name, f"fault-{run.key}-{step or name}")
        self.commands.append(command)
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            attempt, response = await self.send("POST", service, path, command.actor, body, command.idempotency_key,
                                                at)
            command.attempts.append(attempt)
            if attempt.outcome is Outcome.OK:
                assert response is not None
                command.replayed += response.headers.get("idempotent-replayed") == "true"
                answer: dict[str, Any] = response.json()
                if answer.get("code") == "recorded_before":
                    # Done before, its first answer lost: the service says what it recorded, the flow reads the rest.
                    command.recovered_from_store = True
                    return await self._recovered(command, recover, deadline, answer)
                return answer
            if attempt.outcome is Outcome.REJECTED and not _in_flight(attempt):
                raise FlowFailed(f"{run.key} {name}: {attempt.status} {attempt.detail}")
            if attempt.outcome is Outcome.UNAVAILABLE and not attempt.retry_after:
                self.missing_retry_after += 1
            if time.monotonic() > deadline:
                raise FlowFailed(f"{run.key} {name}: no success in {STEP_TIMEOUT:.0f}s; last {attempt}")
            await asyncio.sleep(self._pause(attempt))

    async def _recovered(self, command: Command, recover: Callable[[Command], Awaitable[dict[str, Any] | None]] | None,
                         deadline: float, recorded: dict[str, Any]) -> dict[str, Any]:
        while recover is not None:
            answer = await recover(command)
            if answer is not None:
                return answer
            if time.monotonic() > deadline:
                raise FlowFailed(f"{command.case} {command.name}: recorded, but its result never became readable")
            await asyncio.sleep(0.2)
        return recorded

    async def attempt(self, run: CaseRun, service: str, name: str, path: str, body: dict[str, Any] | None = None,
                      *, step: str | None = None) -> Attempt:
        """Send a command once, whatever comes back (for races where a refusal is a right answer)."""
        command = Command(run.key, service, name, f"fault-{run.key}-{step or name}")
        self.commands.append(command)
        attempt, _ = await self.send("POST", service, path, command.actor, body, command.idempotency_key)
        command.attempts.append(attempt)
        return attempt

    def _pause(self, attempt: Attempt) -> float:
        if attempt.outcome is Outcome.UNAVAILABLE and attempt.retry_after:
            return min(float(attempt.retry_after), self.retry_after_cap)
        return 0.5 if _in_flight(attempt) else 0.2

    async def read(self, service: str, path: str) -> httpx.Response | None:
        try:
            return await self._client.get(self.cluster.url(service) + path, headers=bearer(subject="fault-reader"))
        except httpx.TransportError:
            return None

    async def until(self, run: CaseRun, service: str, path: str, condition: Callable[[dict[str, Any]], bool],
                    what: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """Poll a read endpoint until `condition` holds for its body (the consequence of an event arrived)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            response = await self.read(service, path)
            if response is not None:
                last = f"{response.status_code} {response.text[:300]}"
                if response.status_code == 200:
                    body: dict[str, Any] = response.json()
                    if condition(body):
                        return body
            if time.monotonic() > deadline:
                raise FlowFailed(f"{run.key}: {what} did not happen in {timeout:.0f}s (last: {last})")
            await asyncio.sleep(0.2)

    # --- the case flow ---------------------------------------------------------------------------------------

    def new_run(self, index: int, *, online: bool | None = None) -> CaseRun:
        run = CaseRun(key=uuid.uuid4().hex[:12], mode="online" if (online if online is not None else index % 3 == 2)
                      else "in_person", department=DEPARTMENTS[index % len(DEPARTMENTS)])
        self.runs.append(run)
        return run

    async def submit(self, run: CaseRun) -> None:
        answer = await self.command(run, "intake", "SubmitCase", "/cases", {
            "requester": {"relationship": "self", "name": f"Patient {run.key}"},
            "patient": {"name": f"Patient {run.key}", "birth_date": "1970-05-01"}, "mode": run.mode,
            "department": run.department, "question": "Surgery or catheter treatment?",
            "attending_physician": {"name": "Dr. Attending", "institution": "Minato Clinic", "consents": True},
            "wants_treatment_here": False, "complaint_or_litigation": False})
        run.case_id = str(answer["case_id"])
        run.steps_done.append("submitted")

    async def accept(self, run: CaseRun) -> None:
        case = run.case_id
        for kind in ("application_form", "referral_letter", "test_results"):
            await self.command(run, "intake", "ReceiveDocument", f"/cases/{case}/documents",
                               {"kind": kind, "received_on": "2026-12-01"}, step=kind)
        await self.command(run, "intake", "ScreenCase", f"/cases/{case}/screening",
                           {"decision": "accept"})
        run.steps_done.append("accepted")

    async def book(self, run: CaseRun) -> None:
        case = run.case_id
        await self.until(run, "scheduling", f"/cases/{case}/schedule",
                         lambda body: body["status"] == "awaiting_proposals", "scheduling learning of CaseAccepted")

        async def opened_slot(_: Command) -> dict[str, Any] | None:
            response = await self.read("scheduling", f"/departments/{run.department}/slots?from="
                                                     f"{CONSULTATION_DAY}&to={CONSULTATION_DAY}")
            if response is None or response.status_code != 200:
                return None
            mine = [slot for slot in response.json()["slots"] if slot["physician_id"] == run.physician]
            return {"opened": mine} if mine else None

        opened = await self.command(run, "scheduling", "OpenSlots", f"/departments/{run.department}/slots", {
            "physician_id": run.physician, "from": str(CONSULTATION_DAY), "to": str(CONSULTATION_DAY),
            "start_times": ["10:00"], "duration_minutes": 60}, recover=opened_slot)
        run.slot_id = opened["opened"][0]["slot_id"]
        await self.command(run, "scheduling", "ProposeSlots", f"/cases/{case}/proposals", {"slot_ids": [run.slot_id]})

        async def appointment(_: Command) -> dict[str, Any] | None:
            response = await self.read("scheduling", f"/cases/{case}/appointment")
            return response.json() if response is not None and response.status_code == 200 else None

        confirmed = await self.command(run, "scheduling", "ConfirmSlot", f"/cases/{case}/appointment",
                                       {"slot_id": run.slot_id}, recover=appointment)
        run.appointment_id = str(confirmed["appointment_id"])
        if run.mode == "online":
            await self.command(run, "scheduling", "RegisterOnlineBooking",
                               f"/appointments/{run.appointment_id}/online-booking",
                               {"clinics_booking_ref": f"CLN-{run.key}"})
        run.steps_done.append("booked")

    async def consult(self, run: CaseRun) -> None:
        await self.until(run, "billing", f"/invoices/{run.invoice_id}", lambda body: body["status"] == "issued",
                         "billing invoicing on SlotConfirmed")
        if run.mode == "in_person":
            await self.command(run, "billing", "CapturePayment", f"/invoices/{run.invoice_id}/payments",
                               {"method": "cash", "amount": FEES[run.mode]})
            await self.until(run, "scheduling", f"/cases/{run.case_id}/schedule", lambda body: body["fee_paid"],
                             "scheduling learning of PaymentCaptured")
        await self.command(run, "scheduling", "CompleteConsultation", f"/appointments/{run.appointment_id}/complete",
                           at=CONSULTED_AT)
        run.steps_done.append("consulted")

    async def report(self, run: CaseRun) -> None:
        case = run.case_id
        await self.until(run, "reporting", f"/cases/{case}/timeline",
                         lambda body: any(event["event"] == "ConsultationCompleted" for event in body["events"]),
                         "reporting learning of ConsultationCompleted")
        await self.command(run, "reporting", "DraftReport", f"/cases/{case}/report",
                           {"summary": "Catheter treatment is reasonable."})
        await self.command(run, "reporting", "FinalizeReport", f"/cases/{case}/report/finalize")
        channel = "handed_to_patient" if run.mode == "in_person" else "posted_to_attending_physician"
        await self.command(run, "reporting", "RecordDelivery", f"/cases/{case}/report/delivery", {"channel": channel})
        await self.until(run, "reporting", f"/cases/{case}/report", lambda body: body["closed_on"] is not None,
                         "reporting closing the case once the fee is paid")
        run.steps_done.append("closed")

    async def run_case(self, run: CaseRun) -> CaseRun:
        """The whole flow; a failure is kept on the run (and raised by `drive`) rather than cancelling others."""
        try:
            await self.submit(run)
            await self.accept(run)
            await self.book(run)
            await self.consult(run)
            await self.report(run)
            run.finished = True
        except Exception as error:
            run.error = f"{error.__class__.__name__}: {error}"
        return run

    async def drive(self, runs: Sequence[CaseRun], concurrency: int = 6) -> None:
        """Every run's flow, `concurrency` cases at a time; FlowFailed naming the runs that did not finish."""
        gate = asyncio.Semaphore(concurrency)

        async def one(run: CaseRun) -> None:
            async with gate:
                await self.run_case(run)

        await asyncio.gather(*(one(run) for run in runs))
        failed = [run for run in runs if not run.finished]
        if failed:
            raise FlowFailed(f"{len(failed)} of {len(runs)} cases did not finish: "
                             + "; ".join(f"{run.key}: {run.error}" for run in failed[:5]))

    def start(self, count: int, *, concurrency: int = 6, online: bool | None = None) -> tuple[list[CaseRun],
                                                                                              asyncio.Task[None]]:
        """`count` new cases driven in the background: (their runs, the task to await)."""
        first = len(self.runs)
        runs = [self.new_run(first + index, online=online) for index in range(count)]
        flows = asyncio.create_task(self.drive(runs, concurrency))
        self._flows.append(flows)
        return runs, flows

    async def progress(self, runs: Iterable[CaseRun], step: str, at_least: int, timeout: float = STEP_TIMEOUT) -> None:
        """Until at least `at_least` of `runs` got past `step` (so a fault lands mid-stream)."""
        runs = list(runs)
        deadline = time.monotonic() + timeout
        while sum(step in run.steps_done for run in runs) < at_least:
            failed = [run.error for run in runs if run.error]
            if failed:
                raise FlowFailed(f"a case failed before the fault: {failed[0]}")
            if time.monotonic() > deadline:
                raise FlowFailed(f"fewer than {at_least} cases got past {step} in {timeout:.0f}s")
            await asyncio.sleep(0.05)
