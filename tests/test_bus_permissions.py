"""Who may publish and read what on the bus, against the real broker and its permissions: each service is its own
broker user limited to its own routing keys and queues, every message names its publisher (AMQP user_id, checked
by the broker), and a consumer dead-letters an event its owning service did not publish."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
import aiormq
import pytest

from eventkit.broker_users import UNAUTHORISED_PUBLISHER, service_url
from eventkit.consumer import REASON_HEADER
from eventkit.credentials import development_secret, with_credentials
from eventkit.runtime import wait_until
from eventkit.testing import (
    EventCollector,
    bearer,
    drain_queue,
    make_envelope,
    publish_raw,
    running_app,
    scalar,
)
from secondopinion_contracts import EXCHANGE
from secondopinion_contracts.codes import PaymentMethod
from secondopinion_contracts.events.billing import PaymentCaptured

REFUSED = (aiormq.exceptions.ChannelAccessRefused, aiormq.exceptions.ChannelPreconditionFailed,
           aio_pika.exceptions.ChannelClosed)


def forged_payment() -> aio_pika.Message:
    envelope = make_envelope(PaymentCaptured(case_id=uuid.uuid4(), invoice_id=uuid.uuid4(), amount=33_000,
                                             method=PaymentMethod.CARD, captured_at=datetime.now(UTC)))
    return aio_pika.Message(envelope.to_json_bytes(), message_id=str(envelope.id))


async def publish_as(url: str, user: str, message: aio_pika.Message, routing_key: str) -> None:
    connection = await aio_pika.connect(service_url(url, user))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE)
        await exchange.publish(message, routing_key=routing_key, timeout=10)
    finally:
        await connection.close()


async def test_a_service_may_publish_only_its_own_routing_keys(rabbitmq_url: str) -> None:
    collector = await EventCollector(rabbitmq_url, "#").start()
    try:
        with pytest.raises(REFUSED):
            await publish_as(rabbitmq_url, "intake", forged_payment(), "billing.PaymentCaptured.v1")
        own = aio_pika.Message(b"{}", user_id="intake")
        await publish_as(rabbitmq_url, "intake", own, "intake.Anything.v1")
        await wait_until(lambda: collector.messages, timeout=10)
        assert [message.routing_key for message in collector.messages] == ["intake.Anything.v1"]
    finally:
        await collector.stop()


async def test_a_message_cannot_claim_another_publisher(rabbitmq_url: str) -> None:
    message = forged_payment()
    message.user_id = "billing"
    with pytest.raises(REFUSED):  # the broker checks user_id against the connection's user
        await publish_as(rabbitmq_url, "intake", message, "intake.PaymentCaptured.v1")


async def test_a_service_cannot_touch_another_services_queues_or_the_exchange(rabbitmq_url: str) -> None:
    admin = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await admin.channel()
        await channel.declare_queue("scheduling.inbox", durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        await admin.close()
    attempts: dict[str, Callable[[aio_pika.abc.AbstractChannel], Awaitable[object]]] = {
        "read another's inbox": lambda channel: _consume(channel, "scheduling.inbox"),
        "declare a queue of another name": lambda channel: channel.declare_queue("intake.sneaky"),
        "delete the events exchange": lambda channel: channel.exchange_delete(EXCHANGE),
        "declare the exchange anew": lambda channel: channel.declare_exchange(EXCHANGE, "topic", durable=True),
    }
    for what, attempt in attempts.items():
        connection = await aio_pika.connect(service_url(rabbitmq_url, "intake"))
        try:
            channel = await connection.channel()
            with pytest.raises(REFUSED):
                await attempt(channel)
        except pytest.fail.Exception:
            pytest.fail(f"intake could {what}")
        finally:
            await connection.close()


async def _consume(channel: aio_pika.abc.AbstractChannel, name: str) -> None:
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    queue = await channel.get_queue(name)
    await queue.consume(ignore)


async def test_a_subscriber_declares_and_reads_only_queues_of_its_own(rabbitmq_url: str) -> None:
    subscriber_url = with_credentials(rabbitmq_url, "subscriber", development_secret("subscriber", "rabbitmq_password"))
    connection = await aio_pika.connect(subscriber_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("subscriber.ward-system", durable=True)
        await queue.bind(EXCHANGE, routing_key="intake.#")
        await publish_raw(rabbitmq_url, b"{}", "intake.CaseSubmitted.v1")
        message = await _first(queue)
        assert message.user_id == "intake"
        exchange = await (await connection.channel(publisher_confirms=True)).get_exchange(EXCHANGE)
        with pytest.raises(REFUSED):
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="intake.CaseSubmitted.v1", timeout=10)
        other = await connection.channel()
        with pytest.raises(REFUSED):
            await other.declare_queue("ward-system")
    finally:
        await connection.close()


async def _first(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    for _ in range(100):
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("nothing arrived")


async def test_events_a_service_publishes_name_it_as_their_publisher(database: str, rabbitmq_url: str) -> None:
    from intake.bootstrap import build
    from intake.settings import IntakeSettings

    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    try:
        settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
        assert settings.rabbitmq_url.startswith("amqp://intake:")
        async with running_app(build(settings), headers=bearer("coordinator")) as intake:
            response = await intake.post("/cases", json={
                "requester": {"relationship": "self", "name": "N"},
                "patient": {"name": "N", "birth_date": "1980-01-01"}, "mode": "online",
                "department": "neurology", "question": "q",
                "attending_physician": {"name": "D", "institution": "I", "consents": True},
                "wants_treatment_here": False, "complaint_or_litigation": False})
            assert response.status_code == 201
            await wait_until(lambda: collector.messages, timeout=10)
        assert {message.user_id for message in collector.messages} == {"intake"}
    finally:
        await collector.stop()


@pytest.mark.parametrize("user_id", ["", "guest"])
async def test_a_forged_payment_is_dead_lettered_by_scheduling_and_changes_nothing(
        database: str, rabbitmq_url: str, user_id: str) -> None:
    from scheduling.bootstrap import build
    from scheduling.settings import SchedulingSettings

    settings = SchedulingSettings(SCHEDULING_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    async with running_app(build(settings)):
        events_before = await scalar(database, "SELECT count(*) FROM events")
        forged = forged_payment()
        # An administrator's connection (guest here) may publish any key: only the user_id tells the forgery.
        await publish_raw(rabbitmq_url, forged.body, "billing.PaymentCaptured.v1", message_id=forged.message_id,
                          as_user="guest", user_id=user_id)
        [dead] = await drain_queue(rabbitmq_url, "scheduling.inbox.dlq", until=lambda taken: len(taken) >= 1)
        assert dead.headers[REASON_HEADER] == UNAUTHORISED_PUBLISHER
        assert dead.message_id == forged.message_id
        assert await scalar(database, "SELECT count(*) FROM inbox WHERE message_id = $1", forged.message_id) == 0
        assert await scalar(database, "SELECT count(*) FROM events") == events_before

        genuine = forged_payment()  # the same event from billing's own user is taken
        await publish_raw(rabbitmq_url, genuine.body, "billing.PaymentCaptured.v1", message_id=genuine.message_id)
        await wait_until(lambda: scalar(database, "SELECT count(*) FROM inbox WHERE message_id = $1",
                                        genuine.message_id), timeout=10)
