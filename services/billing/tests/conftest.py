"""Billing's test fixtures: the billing app running with its bus, database, gateway simulator and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from billing.gateway_simulator import GatewaySimulator
from billing.testing import BillingWorld, SchedulingEvents, billing_world
from eventkit.testing import EventCollector, SettableClock


@pytest.fixture
async def world(database: str, rabbitmq_url: str) -> AsyncIterator[BillingWorld]:
    async with billing_world(database, rabbitmq_url) as running:
        yield running


@pytest.fixture
def billing(world: BillingWorld) -> httpx.AsyncClient:
    return world.client


@pytest.fixture
def scheduling(world: BillingWorld) -> SchedulingEvents:
    return world.scheduling


@pytest.fixture
def bus(world: BillingWorld) -> EventCollector:
    return world.bus


@pytest.fixture
def clock(world: BillingWorld) -> SettableClock:
    return world.clock


@pytest.fixture
def gateway(world: BillingWorld) -> tuple[str, GatewaySimulator]:
    return world.gateway_url, world.simulator
