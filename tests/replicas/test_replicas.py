"""Two processes of each service on the same queues, as Kubernetes runs two replicas (competing consumers):
the same stream of cases ends exactly as it does with one, and the events of one case, handled by both
replicas at once and in the wrong order, end as they would in order.

Per-case order is not preserved across replicas: the consumer's per-case lock (eventkit.consumer) holds within
one process only, and the broker hands consecutive messages to whichever replica has room. It is tolerated by
design: every reaction is decided against the case's own stream with optimistic concurrency (a conflicting
append is decided again from fresh state), billing keys everything by the appointment and keeps a fact that
overtakes the confirmation, scheduling keeps a case closed when the withdrawal overtakes the acceptance, and
reporting serializes a case's writers with an advisory lock and recomputes its board row from the whole log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from billing.domain import invoice_id_for
from eventkit.testing import make_envelope
from reporting.testing import Bus
from secondopinion_contracts import CloudEvent, EventData
from secondopinion_contracts.codes import Mode, WithdrawalReason
from secondopinion_contracts.events.intake import CaseAccepted, CaseWithdrawn
from secondopinion_contracts.events.scheduling import ConsultationCompleted, SlotConfirmed
from tests.faults.checker import Checker
from tests.faults.cluster import Cluster, JournalEntry, running_cluster
from tests.faults.desk import CaseRun, Desk

TWO_EACH = {"intake": 2, "scheduling": 2, "billing": 2, "reporting": 2}
CASES = 4

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    async with running_cluster(TWO_EACH, start=()) as running:
        yield running


async def run_with(cluster: Cluster, replicas: int) -> None:
    """Exactly `replicas` processes of each service running, each consumer attached."""
    for processes in cluster.replicas.values():
        for process in processes[:replicas]:
            if not process.alive:
                process.start()
    await asyncio.gather(*(p.wait_ready() for processes in cluster.replicas.values() for p in processes[:replicas]))
    await cluster.wait_attached()
    for service in cluster.consumers:
        assert await cluster.inbox_consumers(service) == replicas


async def outcome(desk: Desk, run: CaseRun) -> dict[str, Any]:
    """Everything the case came to, without its generated ids: the events in each store's streams for the case,
    and what each service's API shows. The events of a stream are compared as a multiset: reactions to two
    independent facts (reporting noting the payment and the completion of an online case) may be recorded in
    either order, with one replica as with two, and must come to the same state."""
    assert run.case_id is not None
    found: dict[str, Any] = {}
    for service in desk.cluster.services:
        streams: dict[str, list[str]] = defaultdict(list)
        for row in await desk.store_rows(
                service, "SELECT stream_type, event_type FROM events WHERE metadata->>'correlation_id' = $1"
                         " ORDER BY stream_id, version", run.case_id):
            streams[row["stream_type"]].append(row["event_type"])
        found[f"{service} streams"] = {stream: sorted(names) for stream, names in streams.items()}
    views = {
        "intake": f"/cases/{run.case_id}", "scheduling": f"/cases/{run.case_id}/schedule",
        "billing": f"/invoices/{run.invoice_id}", "reporting": f"/cases/{run.case_id}/report",
    }
    for service, path in views.items():
        response = await desk.read(service, path)
        assert response is not None
        assert response.status_code == 200, response.text
        body = response.json()
        found[f"{service} view"] = {key: body.get(key) for key in (
            "status", "fee_paid", "total", "closed_on", "fee_settled", "draft_number", "mode")}
    timeline = await desk.read("reporting", f"/cases/{run.case_id}/timeline")
    assert timeline is not None
    found["reporting timeline"] = sorted(f"{e['service']}.{e['event']}" for e in timeline.json()["events"])
    found["reporting board stage"] = timeline.json()["case"]["stage"]
    return found


def handlers_by_service(journal: list[JournalEntry], event_ids: set[str]) -> dict[str, set[int]]:
    """Which processes (pids) of each service handled any of these events to a commit."""
    pids: dict[str, set[int]] = defaultdict(set)
    for entry in journal:
        if entry.event_id in event_ids and entry.verdict == "done":
            pids[entry.service].add(entry.pid)
    return pids


async def test_two_replicas_of_each_service_give_the_same_result_as_one(cluster: Cluster) -> None:
    async with Desk(cluster) as desk:
        results: dict[int, list[dict[str, Any]]] = {}
        for replicas in (1, 2):
            await run_with(cluster, replicas)
            before = {entry.event_id for entry in cluster.journal()}
            runs = [desk.new_run(index) for index in range(CASES)]
            await desk.drive(runs, concurrency=CASES)
            results[replicas] = [await outcome(desk, run) for run in runs]
            checker = Checker(cluster, desk)
            await checker.settle([run.case_id for run in runs if run.case_id])
            if replicas == 2:
                events = {event.event_id for event in await checker.outbox([r.case_id for r in runs if r.case_id])}
                shared = handlers_by_service(cluster.journal(), events - before)
                assert all(len(shared[service]) == 2 for service in cluster.consumers), \
                    f"both replicas of every consumer took part: {dict(shared)}"
        report = await Checker(cluster, desk).account()
        print(report.summary())
        report.assert_clean()
    for index, (alone, together) in enumerate(zip(results[1], results[2], strict=True)):
        assert together == alone, f"case {index} ended differently with two replicas"


async def test_one_case_s_events_on_two_replicas_at_once_and_out_of_order_end_as_in_order(cluster: Cluster) -> None:
    """Pairs of events of one case that race each other across the replicas, published back to back, one half
    of the cases in their natural order and the other half reversed: each half ends the same way."""
    await run_with(cluster, 2)
    pairs = 8
    in_order: list[tuple[uuid.UUID, uuid.UUID, list[CloudEvent]]] = []
    reversed_: list[tuple[uuid.UUID, uuid.UUID, list[CloudEvent]]] = []
    for index in range(2 * pairs):
        case_id, appointment_id = uuid.uuid4(), uuid.uuid4()
        events = racing_events(case_id, appointment_id, index)
        (in_order if index % 2 == 0 else reversed_).append((case_id, appointment_id, events))
    async with Bus(cluster.rabbitmq_url) as bus:
        for _, _, events in in_order:
            await bus.publish(events)
        for _, _, events in reversed_:
            await bus.publish(reversed(events))
    async with Desk(cluster) as desk:
        await asyncio.gather(*(taken_in(desk, case_id, appointment_id, events)
                               for case_id, appointment_id, events in in_order + reversed_))
        await Checker(cluster, desk).settle([str(case_id) for case_id, _, _ in in_order + reversed_])
        ends = {label: [await end_of(desk, *case) for case in group]
                for label, group in (("in order", in_order), ("reversed", reversed_))}
    assert ends["reversed"] == ends["in order"]
    for end in ends["in order"]:
        assert end == EXPECTED_END[end["kind"]]
    journal = cluster.journal()
    split = 0
    for _, _, events in reversed_:
        by = {(entry.service, entry.event_id): entry.pid for entry in journal if entry.verdict == "done"}
        first, second = (str(envelope.id) for envelope in events)
        services = {"scheduling"} if events[0].event_name == "CaseAccepted" else {"billing"}
        split += any(by.get((service, first)) != by.get((service, second)) for service in services | {"reporting"})
    print(f"{split} of {pairs} reversed cases had their two events handled by different replicas")
    assert split > 0, "the broker spread each case's events over both replicas"


def racing_events(case_id: uuid.UUID, appointment_id: uuid.UUID, index: int) -> list[CloudEvent]:
    """Two events of one case whose order matters to the consumer, as their owners publish them."""
    at = datetime(2026, 12, 8, 1, tzinfo=UTC)
    if index % 4 < 2:
        pair: list[EventData] = [
            CaseAccepted(case_id=case_id, department="cardiology", mode=Mode.IN_PERSON, screened_by="dr-screening"),
            CaseWithdrawn(case_id=case_id, reason=WithdrawalReason.PATIENT_REQUEST)]
    else:
        pair = [
            SlotConfirmed(case_id=case_id, appointment_id=appointment_id, slot_id=uuid.uuid4(), start=at,
                          end=at.replace(hour=2), department="cardiology", physician_id="dr-race", mode=Mode.ONLINE),
            ConsultationCompleted(case_id=case_id, appointment_id=appointment_id, mode=Mode.ONLINE,
                                  department="cardiology", physician_id="dr-race", completed_at=at.replace(hour=2))]
    return [make_envelope(event, sequence=n + 1, time=at.replace(minute=n)) for n, event in enumerate(pair)]


EXPECTED_END: dict[str, dict[str, Any]] = {
    # Withdrawn before any date was proposed: scheduling closes the case.
    "withdrawal": {"kind": "withdrawal", "scheduling": "withdrawn", "board": "withdrawn"},
    # Completed online: billing issues the invoice and charges the card once, whichever came first.
    "online fee": {"kind": "online fee", "billing": "paid", "captured": 1, "board": "consulted"},
}


async def taken_in(desk: Desk, case_id: uuid.UUID, appointment_id: uuid.UUID, events: list[CloudEvent]) -> None:
    """Until both events are in their consumers' inboxes and, for an online fee, the charge was decided."""
    run = CaseRun(key=case_id.hex[:12], case_id=str(case_id), appointment_id=str(appointment_id))
    withdrawal = events[0].event_name == "CaseAccepted"
    ids = [str(envelope.id) for envelope in events]

    async def both_in() -> bool:
        for service in ("scheduling" if withdrawal else "billing", "reporting"):
            rows = await desk.store_rows(service, "SELECT count(*) AS n FROM inbox WHERE message_id = ANY($1::text[])",
                                         ids)
            if rows[0]["n"] != len(ids):
                return False
        return True

    await wait_for(both_in, f"both events of {case_id} to be taken in")
    if not withdrawal:
        # The card is charged in the background once the completion is noted.
        await desk.until(run, "billing", f"/invoices/{invoice_id_for(appointment_id)}",
                         lambda body: body["status"] not in ("not_issued", "issued"), "the online charge", 60)


async def end_of(desk: Desk, case_id: uuid.UUID, appointment_id: uuid.UUID, events: list[CloudEvent]) -> dict[str, Any]:
    """What the case came to in the consumers of the racing events, and on reporting's board."""
    timeline = await desk.read("reporting", f"/cases/{case_id}/timeline")
    assert timeline is not None
    stage = timeline.json()["case"]["stage"]
    if events[0].event_name == "CaseAccepted":
        schedule = await desk.read("scheduling", f"/cases/{case_id}/schedule")
        assert schedule is not None
        return {"kind": "withdrawal", "scheduling": schedule.json()["status"], "board": stage}
    invoice = await desk.read("billing", f"/invoices/{invoice_id_for(appointment_id)}")
    assert invoice is not None
    captured = await desk.store_rows("billing", "SELECT count(*) AS n FROM events WHERE event_type = 'PaymentCaptured'"
                                                " AND metadata->>'correlation_id' = $1", str(case_id))
    return {"kind": "online fee", "billing": invoice.json()["status"], "captured": captured[0]["n"], "board": stage}


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"waited {timeout:.0f}s for {what}"
        await asyncio.sleep(0.1)
