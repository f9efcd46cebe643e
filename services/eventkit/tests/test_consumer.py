"""Consuming: one effect per event however often it is delivered, poison to the DLQ with a reason,
bounded retries for a failing handler, and no dead-lettering while the database is down."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from eventkit.consumer import ATTEMPTS_HEADER, REASON_HEADER, Delivery
from eventkit.db import Conn
from eventkit.runtime import ServiceRuntime, wait_until
from eventkit.settings import ServiceSettings
from eventkit.store import EventTypes
from eventkit.testing import drain_queue, publish_raw
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted


class Behaviour:
    fail_times = 0
    calls = 0


def accepted_event(case_id: uuid.UUID | None = None) -> CloudEvent:
    case_id = case_id or uuid.uuid4()
    data = CaseAccepted(case_id=case_id, department="cardiology", mode=Mode.ONLINE, screened_by="dr-1")
    return CloudEvent(id=uuid.uuid4(), source="/secondopinion/intake", type=CaseAccepted.type_name(),
                      subject=str(case_id), time=datetime.now(UTC), dataschema=CaseAccepted.schema_uri(),
                      data=data.model_dump(mode="json"), sequence=1, correlationid=str(case_id))


@pytest.fixture
async def runtime(database: str, rabbitmq_url: str, tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_effects.sql").write_text(
        "CREATE TABLE effects (event_id uuid, case_id uuid, noted_on date);")
    behaviour = Behaviour()

    async def record_acceptance(conn: Conn, delivery: Delivery) -> None:
        behaviour.calls += 1
        if behaviour.calls <= behaviour.fail_times:
            raise RuntimeError("handler bug")
        assert isinstance(delivery.data, CaseAccepted)
        await conn.execute("INSERT INTO effects VALUES ($1, $2, $3)", delivery.envelope.id, delivery.data.case_id,
                           date(2026, 12, 1))

    settings = ServiceSettings(service="testsvc", database_url=database, RABBITMQ_URL=rabbitmq_url,
                               CONSUMER_MAX_ATTEMPTS=3)
    service = ServiceRuntime(settings, types=EventTypes.of(), migrations=[tmp_path / "migrations"],
                             handlers=lambda _: {CaseAccepted: record_acceptance})
    service.behaviour = behaviour  # type: ignore[attr-defined]
    await service.start()
    assert service.consumer is not None
    service.consumer.retry_base_delay = 0.01
    service.consumer.transient_delay = 0.1
    try:
        yield service
    finally:
        await service.stop()


async def effects(runtime: ServiceRuntime) -> list[asyncpg.Record]:
    async with runtime.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM effects"))


async def test_an_event_delivered_three_times_has_one_effect(runtime: ServiceRuntime, rabbitmq_url: str) -> None:
    event = accepted_event()
    for _ in range(3):
        await publish_raw(rabbitmq_url, event.to_json_bytes(), event.routing_key, message_id=str(event.id))
    second = accepted_event()
    await publish_raw(rabbitmq_url, second.to_json_bytes(), second.routing_key)
    await wait_until(lambda: _count_is(runtime, 2))
    await asyncio.sleep(0.3)  # give any further (wrong) effect the chance to appear
    rows = await effects(runtime)
    assert sorted(str(r["event_id"]) for r in rows) == sorted([str(event.id), str(second.id)])


async def _count_is(runtime: ServiceRuntime, count: int) -> bool:
    return len(await effects(runtime)) >= count


@pytest.mark.parametrize(("body", "routing_key", "reason"), [
    (b"{not json", "intake.CaseAccepted.v1", "invalid-envelope"),
    (b'{"specversion": "1.0"}', "intake.CaseAccepted.v1", "invalid-envelope"),
    (None, "intake.CaseAccepted.v1", "schema-invalid"),
    (None, "intake.CaseAccepted.v1", "unknown-event-type"),
])
async def test_poison_messages_go_to_the_dlq_with_a_reason_and_the_queue_keeps_flowing(
        runtime: ServiceRuntime, rabbitmq_url: str, body: bytes | None, routing_key: str, reason: str) -> None:
    if body is None:
        bad = json.loads(accepted_event().to_json_bytes())
        if reason == "schema-invalid":
            bad["data"]["mode"] = "by_carrier_pigeon"
        else:
            bad["type"] = "secondopinion.intake.CaseAccepted.v9"
        body = json.dumps(bad).encode()
    await publish_raw(rabbitmq_url, body, routing_key)
    good = accepted_event()
    await publish_raw(rabbitmq_url, good.to_json_bytes(), good.routing_key)
    await wait_until(lambda: _count_is(runtime, 1))
    dead = await drain_queue(rabbitmq_url, "testsvc.inbox.dlq", until=lambda taken: len(taken) >= 1)
    assert len(dead) == 1
    assert dead[0].body == body
    assert dead[0].headers[REASON_HEADER] == reason
    assert [str(r["event_id"]) for r in await effects(runtime)] == [str(good.id)]


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
        runtime: ServiceRuntime, rabbitmq_url: str) -> None:
    runtime.behaviour.fail_times = 1000  # type: ignore[attr-defined]
    event = accepted_event()
    await publish_raw(rabbitmq_url, event.to_json_bytes(), event.routing_key, message_id=str(event.id))
    dead = await drain_queue(rabbitmq_url, "testsvc.inbox.dlq", until=lambda taken: len(taken) >= 1)
    assert len(dead) == 1
    assert dead[0].headers[REASON_HEADER] == "retries-exhausted"
    assert dead[0].headers[ATTEMPTS_HEADER] == 3
    assert runtime.behaviour.calls == 3  # type: ignore[attr-defined]
    assert await effects(runtime) == []


async def test_a_dead_letter_copy_that_could_not_be_sent_is_handed_back_and_sent_later(
        runtime: ServiceRuntime, rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = runtime.consumer
    assert consumer is not None
    send = consumer._send
    refused: list[str] = []

    async def refuse_the_first_dead_letter(broker: Any, body: bytes, queue: str, headers: dict[str, Any],
                                           message_id: str | None) -> None:
        if queue.endswith(".dlq") and not refused:
            refused.append(queue)
            raise TimeoutError("no confirm for the dead-letter copy")
        await send(broker, body, queue, headers, message_id)

    monkeypatch.setattr(consumer, "_send", refuse_the_first_dead_letter)
    await publish_raw(rabbitmq_url, b"{not json", "intake.CaseAccepted.v1")
    good = accepted_event()
    await publish_raw(rabbitmq_url, good.to_json_bytes(), good.routing_key)
    dead = await drain_queue(rabbitmq_url, "testsvc.inbox.dlq", until=lambda taken: len(taken) >= 1)
    assert refused == ["testsvc.inbox.dlq"]
    assert [message.body for message in dead] == [b"{not json"]
    await wait_until(lambda: _count_is(runtime, 1))
    assert all((await runtime.readiness()).values())


async def test_a_handler_that_fails_once_succeeds_on_retry_with_one_effect(
        runtime: ServiceRuntime, rabbitmq_url: str) -> None:
    runtime.behaviour.fail_times = 1  # type: ignore[attr-defined]
    event = accepted_event()
    await publish_raw(rabbitmq_url, event.to_json_bytes(), event.routing_key, message_id=str(event.id))
    await wait_until(lambda: _count_is(runtime, 1))
    assert len(await effects(runtime)) == 1


async def test_a_database_outage_requeues_without_dead_lettering(runtime: ServiceRuntime, rabbitmq_url: str,
                                                                database: str) -> None:
    # Cut every connection of the service's pool, as a PostgreSQL restart would, while an event arrives.
    admin = await asyncpg.connect(database.rsplit("/", 1)[0] + "/postgres")
    name = database.rsplit("/", 1)[1]
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                            "AND pid <> pg_backend_pid()", name)
    finally:
        await admin.close()
    event = accepted_event()
    await publish_raw(rabbitmq_url, event.to_json_bytes(), event.routing_key, message_id=str(event.id))
    await wait_until(lambda: _count_is(runtime, 1), timeout=15)
    assert await drain_queue(rabbitmq_url, "testsvc.inbox.dlq", timeout=0.5) == []


async def test_a_catch_all_consumer_takes_the_successor_and_skips_the_deprecated_copy(
        database: str, rabbitmq_url: str) -> None:
    from eventkit.testing import make_envelope
    from secondopinion_contracts.codes import DeclineReason, Screening
    from secondopinion_contracts.events.intake import CaseDeclinedV2

    seen: list[str] = []

    async def log_everything(conn: Conn, delivery: Delivery) -> None:
        seen.append(delivery.envelope.type)

    settings = ServiceSettings(service="testsvc", database_url=database, RABBITMQ_URL=rabbitmq_url)
    service = ServiceRuntime(settings, types=EventTypes.of(), catch_all=lambda _: log_everything,
                             extra_bindings=("#",))
    await service.start()
    try:
        v2 = CaseDeclinedV2(case_id=uuid.uuid4(), reasons=[DeclineReason.PATIENT_DECEASED],
                            screening=Screening.AUTOMATIC)
        v1_copy = make_envelope(v2.as_v1()).model_copy(update={"supersededby": v2.type_name()})
        await publish_raw(rabbitmq_url, v1_copy.to_json_bytes(), v1_copy.routing_key)
        successor = make_envelope(v2)
        await publish_raw(rabbitmq_url, successor.to_json_bytes(), successor.routing_key)
        await wait_until(lambda: seen)
        await asyncio.sleep(0.3)
    finally:
        await service.stop()
    assert seen == ["secondopinion.intake.CaseDeclined.v2"]


async def test_after_the_broker_drops_every_connection_the_consumer_comes_back_and_readiness_says_so(
        runtime: ServiceRuntime, rabbitmq_url: str) -> None:
    from eventkit.testing import close_broker_connections

    assert all((await runtime.readiness()).values())
    await wait_until(lambda: close_broker_connections(rabbitmq_url), timeout=10)  # stats may lag a moment
    states = []
    for _ in range(100):
        checks = await runtime.readiness()
        states.append(checks["consumer_attached"])
        if not checks["consumer_attached"]:
            break
        await asyncio.sleep(0.05)
    assert False in states, "readiness never noticed the consumer was gone"
    await wait_until(lambda: _ready(runtime), timeout=30, interval=0.2)
    event = accepted_event()
    await publish_raw(rabbitmq_url, event.to_json_bytes(), event.routing_key, message_id=str(event.id))
    await wait_until(lambda: _count_is(runtime, 1), timeout=15)


async def _ready(runtime: ServiceRuntime) -> bool:
    return all((await runtime.readiness()).values())


async def test_one_case_s_deliveries_run_one_at_a_time_and_leave_no_lock_behind(database: str) -> None:
    from eventkit import db
    from eventkit.consumer import Consumer

    running: dict[str, int] = {}
    most: dict[str, int] = {}

    async def note(conn: Conn, delivery: Delivery) -> None:
        case = delivery.envelope.subject
        running[case] = running.get(case, 0) + 1
        most[case] = max(most.get(case, 0), running[case])
        await asyncio.sleep(0.02)
        running[case] -= 1

    await db.migrate(database, [])
    pool = await db.create_pool(database)
    try:
        consumer = Consumer("testsvc", pool, {CaseAccepted: note})
        cases = [uuid.uuid4(), uuid.uuid4()]
        outcomes = await asyncio.gather(*(consumer.process(accepted_event(case).to_json_bytes())
                                          for case in cases for _ in range(5)))
    finally:
        await pool.close()
    assert {outcome.verdict.value for outcome in outcomes} == {"done"}
    assert most == {str(case): 1 for case in cases}
    assert not consumer._case_locks, "every case's lock is dropped once its last delivery is done"
