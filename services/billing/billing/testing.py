"""Test helpers for billing and for cross-service tests: billing running on a fresh database and vhost
with the gateway simulator served over real HTTP, scheduling's events published as scheduling would, a
clock the test can move, and waiting for an invoice to reach a state.

(Fixtures live in the test modules: a `tests/conftest.py` would be imported as `tests.conftest` and clash
with the repository's own `tests/conftest.py` under pytest's importlib mode.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from billing.bootstrap import build
from billing.domain import invoice_id_for
from billing.gateway_simulator import GatewaySimulator, running_simulator
from billing.settings import BillingSettings
from eventkit.clock import TOKYO
from eventkit.testing import EventCollector, SettableClock, bearer, publish_event, running_app
from secondopinion_contracts import EventData
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, RescheduleReason
from secondopinion_contracts.events.scheduling import (
    AppointmentCancelled,
    AppointmentRescheduled,
    ConsultationCompleted,
    SlotConfirmed,
)


def tokyo(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TOKYO)


@dataclass
class SchedulingEvents:
    """Publishes scheduling's events on the bus as scheduling would."""

    url: str

    async def publish(self, event: EventData, *, event_id: uuid.UUID | None = None,
                      time: datetime | None = None) -> uuid.UUID:
        sent = await publish_event(self.url, event, event_id=event_id, time=time)
        return sent.id

    async def confirm(self, mode: Mode, start: datetime, *, case_id: uuid.UUID | None = None,
                      appointment_id: uuid.UUID | None = None, event_id: uuid.UUID | None = None,
                      time: datetime | None = None) -> SlotConfirmed:
        event = SlotConfirmed(case_id=case_id or uuid.uuid4(), appointment_id=appointment_id or uuid.uuid4(),
                              slot_id=uuid.uuid4(), start=start, end=start + timedelta(hours=1),
                              department="cardiology", physician_id="dr-sato", mode=mode)
        await self.publish(event, event_id=event_id, time=time)
        return event

    async def reschedule(self, confirmed: SlotConfirmed, start: datetime, *, event_id: uuid.UUID | None = None,
                         time: datetime | None = None) -> AppointmentRescheduled:
        event = AppointmentRescheduled(case_id=confirmed.case_id, appointment_id=confirmed.appointment_id,
                                       previous_slot_id=confirmed.slot_id, slot_id=uuid.uuid4(), start=start,
                                       end=start + timedelta(hours=1), physician_id=confirmed.physician_id,
                                       reason=RescheduleReason.PATIENT_REQUEST)
        await self.publish(event, event_id=event_id, time=time)
        return event

    async def cancel(self, confirmed: SlotConfirmed, by: CancelledBy, *,
                     reason: CancellationReason = CancellationReason.PATIENT_REQUEST,
                     event_id: uuid.UUID | None = None, time: datetime | None = None) -> AppointmentCancelled:
        event = AppointmentCancelled(case_id=confirmed.case_id, appointment_id=confirmed.appointment_id,
                                     slot_id=confirmed.slot_id, reason=reason, cancelled_by=by)
        await self.publish(event, event_id=event_id, time=time)
        return event

    async def complete(self, confirmed: SlotConfirmed, *, event_id: uuid.UUID | None = None,
                       time: datetime | None = None) -> ConsultationCompleted:
        event = ConsultationCompleted(case_id=confirmed.case_id, appointment_id=confirmed.appointment_id,
                                      mode=confirmed.mode, department=confirmed.department,
                                      physician_id=confirmed.physician_id, completed_at=confirmed.end)
        await self.publish(event, event_id=event_id, time=time)
        return event


def invoice_of(confirmed: SlotConfirmed) -> uuid.UUID:
    return invoice_id_for(confirmed.appointment_id)


async def invoice_when(client: httpx.AsyncClient, invoice_id: uuid.UUID,
                       until: Callable[[dict[str, Any]], bool] = lambda _: True,
                       timeout: float = 10.0) -> dict[str, Any]:
    """GET the invoice until it exists and `until(view)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, Any] | None = None
    while True:
        response = await client.get(f"/invoices/{invoice_id}")
        if response.status_code == 200:
            last = response.json()
            if until(last):
                return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"invoice {invoice_id} not as expected in {timeout}s; last seen: {last}")
        await asyncio.sleep(0.05)


# What the test settings set: small timeouts and backoffs, and the receipts' registration number.
QUALIFIED_INVOICE_NUMBER = "T1234567890123"


def settings_for_tests(database: str, rabbitmq_url: str, gateway_url: str, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "BILLING_DATABASE_URL": database, "RABBITMQ_URL": rabbitmq_url, "OUTBOX_SWEEP_SECONDS": 0.2,
        "BILLING_GATEWAY_URL": gateway_url, "BILLING_QUALIFIED_INVOICE_NUMBER": QUALIFIED_INVOICE_NUMBER,
        "BILLING_GATEWAY_TIMEOUT_SECONDS": 0.3, "BILLING_CHARGE_BACKOFF_SECONDS": 0.05,
        "BILLING_CHARGE_BACKOFF_MAX_SECONDS": 0.2, "BILLING_CHARGE_SWEEP_SECONDS": 0.1, "BILLING_CHARGE_MAX_TRIES": 3,
        **overrides,
    }
    return BillingSettings(**values)


@dataclass
class BillingWorld:
    """Billing running with everything it talks to: the bus, the database, the gateway simulator."""

    client: httpx.AsyncClient
    gateway_url: str
    simulator: GatewaySimulator
    bus: EventCollector
    scheduling: SchedulingEvents
    clock: SettableClock
    database: str
    rabbitmq_url: str

    def settings(self, **overrides: Any) -> BillingSettings:
        return settings_for_tests(self.database, self.rabbitmq_url, self.gateway_url, **overrides)


@asynccontextmanager
async def billing_world(database: str, rabbitmq_url: str) -> AsyncIterator[BillingWorld]:
    """The billing app (lifespan started) on `database` and `rabbitmq_url`, its clock at 2026-12-01 09:30 in
    Tokyo, its HTTP client holding a token with every role (subject `cashier-7`), and a subscriber to
    billing's events started before anything is published."""
    clock = SettableClock(tokyo(2026, 12, 1, 9, 30))
    async with running_simulator() as (gateway_url, simulator):
        bus = await EventCollector(rabbitmq_url, "billing.#").start()
        try:
            app = build(settings_for_tests(database, rabbitmq_url, gateway_url), clock=clock)
            async with running_app(app, headers=bearer(subject="cashier-7")) as client:
                yield BillingWorld(client=client, gateway_url=gateway_url, simulator=simulator, bus=bus,
                                   scheduling=SchedulingEvents(rabbitmq_url), clock=clock, database=database,
                                   rabbitmq_url=rabbitmq_url)
        finally:
            await bus.stop()




async def handled(database: str, deliveries: int = 1) -> bool:
    """Billing's consumer committed this many distinct deliveries (its inbox keeps each event id once)."""
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM inbox")) >= deliveries
    finally:
        await conn.close()
