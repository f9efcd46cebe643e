"""Fault injection, short versions (`make chaos` runs the long soak): whole cases driven through the four
services, run as processes, while the broker, the database and the services fail; the checker then accounts
for every command and event (tests/faults/checker.py) and finds none lost and none duplicated.

Scenarios that stop or kill a server the whole machine shares take it only when no other test run is going
(tests/faults/infra.py: skipped, with the reason, if the machine stays busy) and always put it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from eventkit.consumer import ATTEMPTS_HEADER
from eventkit.testing import make_envelope, publish_raw
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.scheduling import SlotConfirmed

from .checker import Checker, Report, dead_letter_reason, topic_matches
from .cluster import CONSULTED_AT, Cluster, ServiceProcess, running_cluster
from .desk import CaseRun, Desk, Outcome
from .infra import (
    MachineBusy,
    alone_on_machine,
    backends_waiting_on_lock,
    broker_killed,
    broker_stopped,
    machine_watch,
    postgres_down,
    terminate_backends,
    vhost_shut,
    whole_server_fault,
)

ONE_EACH = {"intake": 1, "scheduling": 1, "billing": 1, "reporting": 1}
CASES = 4

# Long enough for a cold broker start on a busy machine plus the wait for the machine to be free.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    if not alone_on_machine():
        machine_watch()  # watching from now, the quiet period may be over by the first whole-server fault
    async with running_cluster(ONE_EACH) as running:
        yield running


@pytest.fixture
async def desk(cluster: Cluster) -> AsyncIterator[Desk]:
    await cluster.heal()
    async with Desk(cluster) as working:
        yield working


@asynccontextmanager
async def machine_or_skip() -> AsyncIterator[None]:
    """The machine for whole-server faults, or a skip saying who kept it busy."""
    try:
        async with whole_server_fault():
            yield
    except MachineBusy as busy:
        pytest.skip(f"a whole-server fault would break other test runs: {busy}")


async def finish(cluster: Cluster, desk: Desk, flows: asyncio.Task[None] | None = None,
                 allow_dead_letters: Iterable[str] = ()) -> Report:
    """The flows to their end, then the checker's verdict: nothing lost, nothing duplicated."""
    if flows is not None:
        await flows
    report = await Checker(cluster, desk).account(allow_dead_letters=allow_dead_letters)
    print(report.summary())
    report.assert_clean()
    return report


class ReadinessWatch:
    """Polls /readyz of every consumer replica while a fault goes on: which were seen not ready."""

    def __init__(self, cluster: Cluster) -> None:
        self.processes = [p for service in cluster.consumers for p in cluster.replicas[service]]
        self.seen_not_ready: set[str] = set()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                for process in self.processes:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{process.url}/readyz")).status_code != 200:
                            self.seen_not_ready.add(process.name)
                # Each probe opens a connection to the broker: poll gently (the fault lasts until all were seen).
                await asyncio.sleep(0.2)

    async def until_all_seen_not_ready(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.seen_not_ready) < len(self.processes):
            assert loop.time() < deadline, f"only {sorted(self.seen_not_ready)} ever said they were not ready"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def assert_consumers_back(cluster: Cluster, watch: ReadinessWatch) -> None:
    """/readyz went false and is true again, and the broker itself counts each replica's consumer again."""
    await cluster.wait_attached()
    await watch.stop()
    assert watch.seen_not_ready == {p.name for p in watch.processes}
    for service in cluster.consumers:
        assert await cluster.inbox_consumers(service) == len(cluster.replicas[service])


# --- the broker ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("broker_down", [broker_stopped, broker_killed], ids=["restarted", "killed"])
async def test_a_broker_restarted_or_killed_mid_stream_loses_nothing_and_every_consumer_comes_back(
        cluster: Cluster, desk: Desk, broker_down: Callable[[], AbstractAsyncContextManager[None]]) -> None:
    async with machine_or_skip():
        runs, flows = desk.start(CASES)
        await desk.progress(runs, "accepted", 1)
        watch = ReadinessWatch(cluster)
        async with broker_down():
            await watch.until_all_seen_not_ready()
        await assert_consumers_back(cluster, watch)
    await finish(cluster, desk, flows)


async def test_every_connection_closed_by_the_broker_mid_stream_and_consumers_reattach(
        cluster: Cluster, desk: Desk) -> None:
    runs, flows = desk.start(CASES)
    await desk.progress(runs, "accepted", 1)
    watch = ReadinessWatch(cluster)
    async with vhost_shut(cluster.vhost):
        await watch.until_all_seen_not_ready()
    await assert_consumers_back(cluster, watch)
    await finish(cluster, desk, flows)


# --- the consumers ------------------------------------------------------------------------------------------

CRASHES = {"scheduling": "CaseAccepted", "billing": "SlotConfirmed", "reporting": "CaseSubmitted"}


async def test_a_consumer_killed_after_its_commit_and_before_its_ack_has_no_second_effect(
        cluster: Cluster, desk: Desk) -> None:
    for service, event_name in CRASHES.items():
        cluster.arm_crash_after_commit(service, event_name)
    _, flows = desk.start(CASES)
    for service in CRASHES:
        process = cluster.replicas[service][0]

        def died(replica: ServiceProcess = process) -> bool:
            return not replica.alive

        await wait_for(died, f"{service} to die at its armed crash")
        assert cluster.crash_fired(service)
        process.start()  # as Kubernetes restarts a pod
    report = await finish(cluster, desk, flows)
    crashed = [entry for entry in report.journal if entry.verdict == "crash"]
    assert sorted(entry.service for entry in crashed) == sorted(CRASHES)
    for crash in crashed:
        verdicts = [e.verdict for e in report.journal if (e.service, e.event_id) == (crash.service, crash.event_id)]
        # Committed and not acked: the broker delivers it again, and the inbox absorbs it.
        assert verdicts == ["begin", "crash", "begin", "duplicate"], (crash, verdicts)


async def test_duplicated_deliveries_and_events_the_relay_sends_again_have_no_second_effect(
        cluster: Cluster, desk: Desk) -> None:
    runs, flows = desk.start(CASES)
    await flows
    checker = Checker(cluster, desk)
    case_ids = [run.case_id for run in runs if run.case_id]
    await checker.settle(case_ids)
    published = await checker.outbox(case_ids)
    # Another publisher (or the broker after a lost ack) delivers every event of the first case twice more.
    first = [event for event in published if event.case_id == case_ids[0]]
    for event in first:
        body = await outbox_body(cluster, event.service, event.event_id)
        for _ in range(2):
            await publish_raw(cluster.rabbitmq_url, body, event.routing_key, message_id=event.event_id)
    # The relay died after the broker confirmed and before it marked the rows: it sends the second case again.
    second = [event for event in published if event.case_id == case_ids[1]]
    for service in cluster.services:
        conn = await cluster.database(service)
        try:
            await conn.execute("UPDATE outbox SET published_at = NULL WHERE event_id = ANY($1::uuid[])",
                               [event.event_id for event in second if event.service == service])
        finally:
            await conn.close()
    bindings = await checker.subscribers()
    copies = {event.event_id: 2 for event in first} | {event.event_id: 1 for event in second}
    expected_duplicates = sum(times for event in first + second
                              for service, patterns in bindings.items()
                              if any(topic_matches(pattern, event.routing_key) for pattern in patterns)
                              for times in [copies[event.event_id]])
    await wait_for(lambda: absorbed(cluster, copies) >= expected_duplicates, "every copy to be delivered")
    report = await finish(cluster, desk)
    assert absorbed(cluster, copies) == expected_duplicates
    assert report.events.duplicated == 0


def absorbed(cluster: Cluster, event_ids: dict[str, int]) -> int:
    return sum(entry.verdict == "duplicate" and entry.event_id in event_ids for entry in cluster.journal())


async def outbox_body(cluster: Cluster, service: str, event_id: str) -> bytes:
    conn = await cluster.database(service)
    try:
        body: bytes = await conn.fetchval("SELECT body FROM outbox WHERE event_id = $1", uuid.UUID(event_id))
        return body
    finally:
        await conn.close()


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 180.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"waited {timeout:.0f}s for {what}"
        await asyncio.sleep(0.1)


async def test_sigterm_during_a_batch_finishes_or_hands_back_the_work_in_flight(cluster: Cluster,
                                                                                  desk: Desk) -> None:
    reporting = cluster.replicas["reporting"][0]
    assert reporting.process is not None
    pid = reporting.process.pid
    cluster.slow_down("reporting", 0.5)
    try:
        _, flows = desk.start(CASES)
        await wait_for(lambda: len(in_flight(cluster, pid)) >= 3, "a batch of deliveries in flight in reporting")
        busy = in_flight(cluster, pid)
        # uvicorn re-raises the signal once its graceful shutdown is done: -SIGTERM is a clean exit here.
        assert await reporting.terminate() in (0, -signal.SIGTERM), reporting.log_tail()
    finally:
        cluster.slow_down("reporting", None)
    reporting.start()
    report = await finish(cluster, desk, flows)
    settled_by_stopping = {entry.event_id for entry in report.journal if entry.pid == pid and entry.verdict != "begin"}
    settled_later = {entry.event_id for entry in report.journal if entry.pid != pid and entry.service == "reporting"
                     and entry.verdict in ("done", "duplicate")}
    finished, handed_back = busy & settled_by_stopping, busy - settled_by_stopping
    assert handed_back <= settled_later, "whatever the stopping replica did not finish was delivered again"
    assert finished | handed_back == busy
    print(f"SIGTERM with {len(busy)} deliveries in flight: {len(finished)} finished by the stopping replica, "
          f"{len(handed_back)} handed back and handled by its successor")


def in_flight(cluster: Cluster, pid: int) -> set[str]:
    begun: set[str] = set()
    for entry in cluster.journal():
        if entry.pid == pid:
            if entry.verdict == "begin":
                begun.add(entry.event_id)
            else:
                begun.discard(entry.event_id)
    return begun


# --- the database -------------------------------------------------------------------------------------------

async def test_database_connections_terminated_mid_stream_cost_retries_and_nothing_else(
        cluster: Cluster, desk: Desk) -> None:
    runs, flows = desk.start(CASES)
    for step in ("submitted", "accepted", "booked", "consulted"):
        await desk.progress(runs, step, 1)
        await terminate_backends(cluster.databases.values())
    await finish(cluster, desk, flows)


async def test_a_postgres_restart_answers_503_with_retry_after_and_dead_letters_nothing(
        cluster: Cluster, desk: Desk) -> None:
    async with machine_or_skip():
        runs, flows = desk.start(CASES)
        await desk.progress(runs, "booked", 1)
        handled = runs[0]
        assert handled.case_id is not None
        checker = Checker(cluster, desk)
        accepted = [e for e in await checker.outbox([handled.case_id]) if e.name == "CaseAccepted" and e.published]
        body = await outbox_body(cluster, "intake", accepted[0].event_id)
        async with postgres_down():
            during = [await desk.send("POST", service, path, "fault-probe", request)
                      for service, path, request in PROBES]
            # A delivery while the database is down: requeued, not counted against the message.
            await publish_raw(cluster.rabbitmq_url, body, accepted[0].routing_key, message_id=accepted[0].event_id)
            await wait_for(lambda: requeued(cluster, accepted[0].event_id), "a delivery to be requeued")
    for attempt, _ in during:
        assert (attempt.outcome, attempt.status) == (Outcome.UNAVAILABLE, 503), attempt
        assert attempt.retry_after
    await finish(cluster, desk, flows)
    for service, _, _ in PROBES:
        assert await desk.effects_of(service, "fault-probe") == [], "a 503 records nothing"
    verdicts = [e.verdict for e in cluster.journal() if e.event_id == accepted[0].event_id]
    assert "requeue" in verdicts
    assert "dead_letter" not in verdicts


PROBES = [
    ("intake", "/cases", {
        "requester": {"relationship": "self", "name": "P"}, "patient": {"name": "P", "birth_date": "1970-01-01"},
        "mode": "in_person", "department": "cardiology", "question": "q",
        "attending_physician": {"name": "D", "institution": "I", "consents": True},
        "wants_treatment_here": False, "complaint_or_litigation": False}),
    ("scheduling", "/departments/cardiology/slots", {
        "physician_id": "dr-probe", "from": "2026-12-08", "to": "2026-12-08", "start_times": ["11:00"],
        "duration_minutes": 60}),
]


def requeued(cluster: Cluster, event_id: str) -> bool:
    return any(entry.verdict == "requeue" and entry.event_id == event_id for entry in cluster.journal())


# --- poison ----------------------------------------------------------------------------------------------

async def test_poison_is_dead_lettered_with_its_reason_after_bounded_attempts_and_the_queue_keeps_flowing(
        cluster: Cluster, desk: Desk) -> None:
    runs, flows = desk.start(CASES)
    await desk.progress(runs, "submitted", 1)
    case_id = uuid.uuid4()
    valid = make_envelope(SlotConfirmed(
        case_id=case_id, appointment_id=uuid.uuid4(), slot_id=uuid.uuid4(), start=datetime(2026, 12, 8, 1, tzinfo=UTC),
        end=datetime(2026, 12, 8, 2, tzinfo=UTC), department="cardiology", physician_id="dr-x", mode=Mode.IN_PERSON))
    # Before the fee schedule starts (2025-05-01): billing can never invoice it, however often it tries.
    no_fee = valid.model_copy(update={"id": uuid.uuid4(), "data": {
        **valid.data, "appointment_id": str(uuid.uuid4()), "start": "2020-06-02T01:00:00Z",
        "end": "2020-06-02T02:00:00Z"}})
    wrong_schema = valid.model_copy(update={"id": uuid.uuid4(), "data": {"case_id": str(case_id)}})
    unknown_version = valid.model_copy(update={"id": uuid.uuid4(), "type": "secondopinion.scheduling.SlotConfirmed.v9"})
    poison: dict[str, tuple[bytes, str]] = {
        str(uuid.uuid4()): (b'{"specversion": "1.0", "id": ', valid.routing_key),
        str(wrong_schema.id): (wrong_schema.to_json_bytes(), valid.routing_key),
        str(unknown_version.id): (unknown_version.to_json_bytes(), "scheduling.SlotConfirmed.v9"),
        str(no_fee.id): (no_fee.to_json_bytes(), valid.routing_key),
    }
    for message_id, (body, routing_key) in poison.items():
        await publish_raw(cluster.rabbitmq_url, body, routing_key, message_id=message_id)
    report = await finish(cluster, desk, flows, allow_dead_letters=list(poison))
    reasons: dict[str, dict[str, str]] = defaultdict(dict)
    attempts = {}
    for message in report.dead_letters:
        assert message.message_id is not None
        queue = (message.headers or {}).get("x-eventkit-source-queue")
        reasons[str(queue)][message.message_id] = dead_letter_reason(message)
        attempts[(str(queue), message.message_id)] = int(str((message.headers or {})[ATTEMPTS_HEADER]))
    bad_json = next(iter(poison))
    assert reasons == {
        "billing.inbox": {bad_json: "invalid-envelope", str(wrong_schema.id): "schema-invalid",
                          str(no_fee.id): "retries-exhausted"},
        "reporting.inbox": {bad_json: "invalid-envelope", str(wrong_schema.id): "schema-invalid",
                            str(unknown_version.id): "unknown-event-type"},
    }
    assert attempts[("billing.inbox", str(no_fee.id))] == 5, "the default CONSUMER_MAX_ATTEMPTS"
    assert attempts[("billing.inbox", bad_json)] == 1, "what can never succeed is not retried"


# --- concurrency and commit order ---------------------------------------------------------------------------

async def test_concurrent_commands_on_one_aggregate_one_wins_per_version_the_rest_get_409(
        cluster: Cluster, desk: Desk) -> None:
    run = desk.new_run(0, online=False)
    await desk.submit(run)
    documents = await asyncio.gather(*(
        desk.attempt(run, "intake", "ReceiveDocument", f"/cases/{run.case_id}/documents",
                     {"kind": "test_results", "received_on": "2026-12-01"}, step=f"results-{n}") for n in range(8)))
    assert {attempt.outcome for attempt in documents} <= {Outcome.OK, Outcome.REJECTED}
    assert all(a.status == 409 for a in documents if a.outcome is Outcome.REJECTED)
    run.extra_documents = sum(a.outcome is Outcome.OK for a in documents)
    await desk.accept(run)
    await desk.book(run)
    await desk.until(run, "billing", f"/invoices/{run.invoice_id}", lambda body: body["status"] == "issued", "invoice")
    payments = await asyncio.gather(*(desk.attempt(run, "billing", "CapturePayment",
                                                   f"/invoices/{run.invoice_id}/payments",
                                                   {"method": "cash", "amount": 33_000}, step=f"pay-{n}")
                                      for n in range(6)))
    assert sorted(a.status or 0 for a in payments) == [201, 409, 409, 409, 409, 409]
    await desk.until(run, "scheduling", f"/cases/{run.case_id}/schedule", lambda body: body["fee_paid"], "fee paid")
    await desk.command(run, "scheduling", "CompleteConsultation", f"/appointments/{run.appointment_id}/complete",
                       at=CONSULTED_AT)
    await desk.report(run)
    run.finished = True
    conn = await cluster.database("intake")
    try:
        versions = [row["version"] for row in await conn.fetch(
            "SELECT version FROM events WHERE stream_id = $1 ORDER BY version", f"case-{run.case_id}")]
    finally:
        await conn.close()
    assert versions == list(range(1, len(versions) + 1))
    await finish(cluster, desk)


async def test_an_event_committed_after_later_ones_is_still_relayed_and_reaches_every_reader(
        cluster: Cluster, desk: Desk) -> None:
    """One intake transaction holds its outbox row (a lower id) open while a later one commits; then one reporting
    transaction holds its log row (a lower position) open while a later one commits. Nothing that reads in id
    or position order may pass the gap for good: not the outbox relay, not the board's revision."""
    early, late = desk.new_run(0), desk.new_run(1)
    for run in (early, late):
        await desk.submit(run)
    await wait_for(lambda: board_knows(desk, early, late), "reporting to know both cases")
    await held_back(desk, cluster.databases["intake"], "SELECT 1 FROM case_view WHERE case_id = $1 FOR UPDATE",
                    early, late, "1")
    assert early.case_id is not None
    assert late.case_id is not None
    ids = await outbox_ids(cluster, "intake", [early.case_id, late.case_id], "DocumentReceived")
    assert ids[early.case_id] < ids[late.case_id], "the early event took the lower outbox id and committed last"
    before = await held_back(desk, cluster.databases["reporting"],
                             "SELECT 1 FROM case_board WHERE case_id = $1 FOR UPDATE", early, late, "2")
    assert await board_revision(desk) != before, "the board's revision moves when the early event lands"
    for run in (early, late):
        await desk.accept(run)
        await desk.book(run)
        await desk.consult(run)
        await desk.report(run)
        run.finished = True
    await finish(cluster, desk)


async def held_back(desk: Desk, dsn: str, lock: str, early: CaseRun, late: CaseRun, round_: str) -> object:
    """A document for `early` whose transaction in the database `dsn` waits on `lock` (its rows already written)
    while one for `late` commits and reaches reporting; then the lock goes and the early one commits too.
    Returns the board's revision as it was while the early event was still held back."""
    blocker = await asyncpg.connect(dsn)
    document = {"kind": "test_results", "received_on": "2026-12-01"}
    try:
        async with blocker.transaction():
            await blocker.execute(lock, uuid.UUID(early.case_id))
            held = asyncio.create_task(desk.command(early, "intake", "ReceiveDocument",
                                                    f"/cases/{early.case_id}/documents", document, step=round_))
            await wait_for(lambda: waiting_on_lock(dsn), "the early transaction to wait, its rows written")
            await desk.command(late, "intake", "ReceiveDocument", f"/cases/{late.case_id}/documents", document,
                               step=round_)
            await wait_for(lambda: logged(desk, late, "DocumentReceived", int(round_)), "the later one to be logged")
            revision = await board_revision(desk)
        await held
    finally:
        await blocker.close()
    for run in (early, late):
        run.extra_documents += 1
    await wait_for(lambda: logged(desk, early, "DocumentReceived", int(round_)), "the early one to be logged too")
    return revision


async def board_knows(desk: Desk, *runs: CaseRun) -> bool:
    for run in runs:
        response = await desk.read("reporting", f"/cases/{run.case_id}/timeline")
        if response is None or response.status_code != 200:
            return False
    return True


async def logged(desk: Desk, run: CaseRun, event: str, times: int = 1) -> bool:
    response = await desk.read("reporting", f"/cases/{run.case_id}/timeline")
    if response is None or response.status_code != 200:
        return False
    count: int = sum(entry["event"] == event for entry in response.json()["events"])
    return count >= times


async def waiting_on_lock(dsn: str) -> bool:
    return await backends_waiting_on_lock(dsn) > 0


async def board_revision(desk: Desk) -> object:
    response = await desk.read("reporting", "/board?per_column=1")
    assert response is not None
    assert response.status_code == 200
    return response.json()["revision"]


async def outbox_ids(cluster: Cluster, service: str, case_ids: list[str], event_name: str) -> dict[str, int]:
    conn = await cluster.database(service)
    try:
        rows = await conn.fetch("SELECT id, body FROM outbox ORDER BY id")
    finally:
        await conn.close()
    found: dict[str, int] = {}
    for row in rows:
        envelope = CloudEvent.model_validate_json(row["body"])
        if envelope.subject in case_ids and envelope.event_name == event_name:
            found.setdefault(envelope.subject, row["id"])
    return found

