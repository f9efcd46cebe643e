"""Hypothesis publishes malformed and hostile messages into each consuming service's inbox on the real broker
(tests/hardening/messages.py says which). The service running on a fresh database and vhost must:
- dead-letter every malformed message into `<service>.inbox.dlq` at once, with the reason it deserves, and let
  none of them change a single row of its database (no projection, no event, no inbox entry);
- handle or dead-letter every in-contract but nasty event, losing none and never getting stuck;
- keep its consumer attached throughout, and afterwards still be ready and process a good event."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from billing.domain import invoice_id_for
from eventkit.clock import TOKYO
from eventkit.consumer import REASON_HEADER
from eventkit.runtime import ServiceRuntime, wait_until
from eventkit.testing import AsOwners, bearer, publish_event, running_app
from eventkit.topology import dead_letter_queue, declare_exchange, inbox_queue
from secondopinion_contracts import BY_TYPE, EventData
from secondopinion_contracts.codes import Mode, Relationship
from secondopinion_contracts.events.intake import CaseAccepted, CaseSubmitted
from secondopinion_contracts.events.scheduling import SlotConfirmed
from tests.hardening.messages import Hostile, Inbox, in_contract, malformed, once_stuck
from tests.hardening.support import CONSUMERS, DEEP_RUN, LoopBridge, examples, service_app

MALFORMED_BATCHES = examples(30)  # of one to five messages: about 90 malformed messages per inbox
IN_CONTRACT_BATCHES = examples(12)  # of one to four
# Handler failures are dead-lettered after one retry here, so the in-contract phase does not wait out backoffs.
SETTINGS = {"CONSUMER_MAX_ATTEMPTS": 2}
SETTLE_TIMEOUT = 15.0
# No shrinking: a batch that is not settled costs SETTLE_TIMEOUT per attempt. A failure shows the batch as sent.
FUZZ = settings(deadline=None, database=None, derandomize=not DEEP_RUN, print_blob=False,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=[
                    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])

def good_event(service: str) -> tuple[EventData, str]:
    """An event the service handles, and a path that answers 200 once it has been."""
    case_id = uuid.uuid4()
    if service == "scheduling":
        return (CaseAccepted(case_id=case_id, department="cardiology", mode=Mode.IN_PERSON, screened_by="dr-screen"),
                f"/cases/{case_id}/schedule")
    if service == "billing":
        start = datetime(2026, 12, 8, 10, 0, tzinfo=TOKYO)
        confirmed = SlotConfirmed(case_id=case_id, appointment_id=uuid.uuid4(), slot_id=uuid.uuid4(), start=start,
                                  end=start + timedelta(hours=1), department="cardiology", physician_id="dr-sato",
                                  mode=Mode.IN_PERSON)
        return confirmed, f"/invoices/{invoice_id_for(confirmed.appointment_id)}"
    submitted = CaseSubmitted(case_id=case_id, mode=Mode.ONLINE, department="oncology",
                              requester_relationship=Relationship.SELF, patient_is_minor=False, patient_deceased=False,
                              attending_physician_consents=True, wants_treatment_here=False,
                              complaint_or_litigation=False, submitted_on=date(2026, 12, 1))
    return submitted, f"/cases/{case_id}/timeline"


@dataclass
class Harness:
    """The running service, a publisher on its broker, its dead-letter queue and its database."""

    service: str
    runtime: ServiceRuntime
    client: httpx.AsyncClient
    channel: AbstractChannel
    exchange: AbstractExchange
    dlq: AbstractQueue
    db: asyncpg.Connection
    owners: AsOwners

    @property
    def inbox(self) -> Inbox:
        consumer = self.runtime.consumer
        assert consumer is not None
        handled = frozenset(BY_TYPE) if consumer.catch_all is not None else frozenset(consumer.handlers)
        return Inbox(self.service, handled, consumer.bindings)

    async def publish(self, messages: list[Hostile]) -> None:
        for hostile in messages:
            message = aio_pika.Message(body=hostile.body, content_type=hostile.content_type, headers=hostile.headers,
                                       message_id=hostile.message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            if hostile.routing_key:  # as the routing key's owner, as its relay would (user_id and all)
                await self.owners.publish(message, hostile.routing_key)
            else:
                await self.channel.default_exchange.publish(message, routing_key=inbox_queue(self.service))

    async def take_dead_letters(self) -> list[AbstractIncomingMessage]:
        """What the dead-letter queue holds now (taken off it)."""
        taken: list[AbstractIncomingMessage] = []
        while (message := await self.dlq.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
        return taken

    async def settle(self, batch: list[Hostile]) -> tuple[list[AbstractIncomingMessage], set[str]]:
        """The dead letters and the handled event ids, once each message of the batch is one or the other, or
        when SETTLE_TIMEOUT is up (the caller then finds which were neither)."""
        event_ids = [hostile.envelope_id for hostile in batch if hostile.envelope_id]
        dead: list[AbstractIncomingMessage] = []
        handled: set[str] = set()
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            dead += await self.take_dead_letters()
            handled = await self.handled(event_ids)
            if not lost(batch, dead, handled):
                break
            await asyncio.sleep(0.02)
        return dead, handled

    async def handled(self, event_ids: list[str]) -> set[str]:
        rows = await self.db.fetch("SELECT message_id FROM inbox WHERE message_id = ANY($1::text[])", event_ids)
        return {row["message_id"] for row in rows}

    async def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table of the service's database."""
        tables = [row["tablename"] for row in
                  await self.db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {table: sorted(repr(tuple(row)) for row in await self.db.fetch(f'SELECT * FROM "{table}"'))
                for table in tables}

    async def attached(self) -> bool:
        consumer = self.runtime.consumer
        return consumer is not None and consumer.is_attached()


@asynccontextmanager
async def harness(service: str, database: str, rabbitmq_url: str) -> AsyncIterator[Harness]:
    async with service_app(service, database, rabbitmq_url, **SETTINGS) as app, \
            running_app(app, headers=bearer(subject="fuzz-desk")) as client:
        connection = await aio_pika.connect(rabbitmq_url)
        db = await asyncpg.connect(database)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await declare_exchange(channel)
            dlq = await channel.declare_queue(dead_letter_queue(service), passive=True)
            async with AsOwners(rabbitmq_url) as owners:
                yield Harness(service, app.state.runtime, client, channel, exchange, dlq, db, owners)
        finally:
            await db.close()
            await connection.close()


def reasons_by_body(dead: list[AbstractIncomingMessage]) -> dict[bytes, list[str]]:
    reasons: defaultdict[bytes, list[str]] = defaultdict(list)
    for message in dead:
        reasons[message.body].append(str((message.headers or {}).get(REASON_HEADER)))
    return reasons


def lost(sent: list[Hostile], dead: list[AbstractIncomingMessage], handled: set[str]) -> list[Hostile]:
    """The messages sent that are neither among the dead letters (same body) nor handled (event id in the inbox)."""
    left = Counter(message.body for message in dead)
    missing = []
    for hostile in sent:
        if left[hostile.body]:
            left[hostile.body] -= 1
        elif hostile.envelope_id not in handled:
            missing.append(hostile)
    return missing


async def ready(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/readyz")
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("service", CONSUMERS)
async def test_hostile_messages_never_crash_the_consumer_nor_reach_its_database(
        service: str, database: str, rabbitmq_url: str) -> None:
    async with harness(service, database, rabbitmq_url) as running:
        await wait_until(lambda: running.attached(), timeout=10)
        inbox = running.inbox
        bridge = LoopBridge(asyncio.get_running_loop())
        before = await running.snapshot()

        @settings(FUZZ, max_examples=MALFORMED_BATCHES)
        @given(batch=st.lists(malformed(inbox), min_size=1, max_size=5))
        @example(batch=once_stuck(inbox))
        def malformed_are_dead_lettered_and_change_nothing(batch: list[Hostile]) -> None:
            bridge.run(running.publish(batch))
            dead, handled = bridge.run(running.settle(batch))
            missing = lost(batch, dead, set())
            assert not missing, f"not dead-lettered in time: {missing} (handled: {handled})"
            reasons = reasons_by_body(dead)
            wrong = [(hostile.label, hostile.expected_reason, reason) for hostile in batch
                     if (reason := reasons[hostile.body].pop()) != hostile.expected_reason]
            assert wrong == [], "dead-lettered for another reason than expected"
            assert bridge.run(running.snapshot()) == before, "a malformed message changed the database"
            assert bridge.run(running.attached()), "the consumer is no longer attached"

        @settings(FUZZ, max_examples=IN_CONTRACT_BATCHES)
        @given(batch=st.lists(in_contract(inbox), min_size=1, max_size=4))
        def in_contract_are_handled_or_dead_lettered(batch: list[Hostile]) -> None:
            bridge.run(running.publish(batch))
            dead, handled = bridge.run(running.settle(batch))
            missing = lost(batch, dead, handled)
            assert not missing, f"neither handled nor dead-lettered in time: {missing}"
            assert all((letter.headers or {}).get(REASON_HEADER) for letter in dead), "a dead letter without reason"
            assert bridge.run(running.attached()), "the consumer is no longer attached"

        await asyncio.to_thread(malformed_are_dead_lettered_and_change_nothing)
        await asyncio.to_thread(in_contract_are_handled_or_dead_lettered)

        assert set((await running.snapshot()).keys()) == set(before.keys()), "a table went missing"
        event, path = good_event(service)
        await publish_event(rabbitmq_url, event)

        async def processed() -> bool:
            return (await running.client.get(path)).status_code == 200

        await wait_until(processed, timeout=SETTLE_TIMEOUT)
        readiness = await ready(running.client)
        assert readiness["ready"] is True, readiness
        assert readiness["checks"]["consumer_attached"] is True
