"""Online charges through the gateway simulator, served over real HTTP on a local port: the HTTP adapter's
reading of the API, and the charge worker's retries, idempotency keys and the desk's retry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from billing.commands import ChargeCaptured, ChargeDeclined
from billing.gateway import ChargeRequest, GatewayUnavailable
from billing.gateway_http import HttpPaymentGateway
from billing.gateway_simulator import GatewaySimulator, running_simulator
from billing.testing import SchedulingEvents, handled, invoice_of, invoice_when, tokyo
from eventkit.runtime import wait_until
from eventkit.testing import EventCollector, assert_valid
from secondopinion_contracts.codes import Mode, PaymentFailureReason
from secondopinion_contracts.events.scheduling import SlotConfirmed

CONSULTATION = tokyo(2026, 12, 1, 14, 0)
Gateway = tuple[str, GatewaySimulator]


async def fail_next(url: str, kind: str, count: int = 1, delay_seconds: float = 0.6) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/_simulator/faults",
                                     json={"kind": kind, "count": count, "delay_seconds": delay_seconds})
        response.raise_for_status()


async def completed_online(scheduling: SchedulingEvents, billing: httpx.AsyncClient) -> uuid.UUID:
    confirmed = await scheduling.confirm(Mode.ONLINE, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    await scheduling.complete(confirmed)
    return invoice_of(confirmed)


def keys(simulator: GatewaySimulator) -> list[tuple[str, str]]:
    return [(call["idempotency_key"].rsplit("-", 2)[-1], call["outcome"]) for call in simulator.calls]


# --- the HTTP adapter against the simulator --------------------------------------------------------------

@pytest.fixture
async def simulator_only() -> AsyncIterator[Gateway]:
    async with running_simulator() as served:
        yield served


async def test_the_http_adapter_reads_captures_declines_and_replays(simulator_only: Gateway) -> None:
    url, simulator = simulator_only
    adapter = HttpPaymentGateway(url, timeout=2)
    try:
        request = ChargeRequest(idempotency_key="k-1", invoice_id=uuid.uuid4(), amount=44_000)
        first = await adapter.charge(request)
        again = await adapter.charge(request)
        assert isinstance(first, ChargeCaptured)
        assert again == first
        assert len(simulator.charges) == 1
        await fail_next(url, "decline")
        declined = ChargeRequest(idempotency_key="k-2", invoice_id=uuid.uuid4(), amount=44_000)
        assert await adapter.charge(declined) == ChargeDeclined("card_declined")
        assert await adapter.charge(declined) == ChargeDeclined("card_declined")  # final for its key
        await fail_next(url, "error")
        with pytest.raises(GatewayUnavailable) as failed:
            await adapter.charge(ChargeRequest(idempotency_key="k-3", invoice_id=uuid.uuid4(), amount=1))
        assert failed.value.reason is PaymentFailureReason.GATEWAY_ERROR
    finally:
        await adapter.aclose()


async def test_the_http_adapter_turns_a_late_reply_into_a_timeout_and_the_same_key_finds_the_charge(
        simulator_only: Gateway) -> None:
    url, simulator = simulator_only
    adapter = HttpPaymentGateway(url, timeout=0.2)
    try:
        await fail_next(url, "timeout", delay_seconds=0.6)
        request = ChargeRequest(idempotency_key="k-late", invoice_id=uuid.uuid4(), amount=33_000)
        with pytest.raises(GatewayUnavailable) as late:
            await adapter.charge(request)
        assert late.value.reason is PaymentFailureReason.GATEWAY_TIMEOUT
        replayed = await adapter.charge(request)
        assert isinstance(replayed, ChargeCaptured)
        assert [charge["id"] for charge in simulator.charges] == [replayed.charge_id]
    finally:
        await adapter.aclose()


async def test_the_http_adapter_reports_an_unreachable_or_refusing_gateway() -> None:
    async with running_simulator(GatewaySimulator(api_key="right-key")) as (url, simulator):
        wrong_key = HttpPaymentGateway(url, api_key="wrong-key", timeout=2)
        right_key = HttpPaymentGateway(url, api_key="right-key", timeout=2)
        request = ChargeRequest(idempotency_key="k-auth", invoice_id=uuid.uuid4(), amount=1_000)
        try:
            with pytest.raises(GatewayUnavailable):
                await wrong_key.charge(request)
            assert simulator.charges == []
            assert isinstance(await right_key.charge(request), ChargeCaptured)
        finally:
            await wrong_key.aclose()
            await right_key.aclose()
    gone = HttpPaymentGateway(url, timeout=2)  # the simulator has stopped: nothing listens there now
    try:
        with pytest.raises(GatewayUnavailable) as unreachable:
            await gone.charge(request)
        assert unreachable.value.reason is PaymentFailureReason.GATEWAY_ERROR
    finally:
        await gone.aclose()


# --- the charge worker -----------------------------------------------------------------------------------

async def test_a_gateway_timeout_then_success_charges_once(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Gateway) -> None:
    url, simulator = gateway
    await fail_next(url, "timeout", delay_seconds=0.6)
    invoice_id = await completed_online(scheduling, billing)
    captured = (await bus.wait_for(lambda es: any(e.event_name == "PaymentCaptured" for e in es)))[-1]
    assert_valid(captured)
    assert keys(simulator) == [("1", "charged"), ("1", "replayed")]  # one key: the retry found the charge
    assert len(simulator.charges) == 1
    assert captured.data["gateway_charge_id"] == simulator.charges[0]["id"]
    assert captured.data["amount"] == 44_000
    assert bus.of_type("PaymentFailed") == []
    view = await invoice_when(billing, invoice_id, lambda view: view["status"] == "paid")
    assert view["payment"]["gateway_charge_id"] == simulator.charges[0]["id"]


async def test_gateway_5xx_answers_are_retried_with_backoff(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Gateway) -> None:
    url, simulator = gateway
    await fail_next(url, "error", count=2)
    await completed_online(scheduling, billing)
    await bus.wait_for(lambda es: any(e.event_name == "PaymentCaptured" for e in es))
    assert keys(simulator) == [("1", "error"), ("1", "error"), ("1", "charged")]
    assert len(simulator.charges) == 1
    assert bus.of_type("PaymentFailed") == []


async def test_a_decline_is_recorded_and_the_desk_retries_with_a_new_key(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Gateway) -> None:
    url, simulator = gateway
    await fail_next(url, "decline")
    invoice_id = await completed_online(scheduling, billing)
    failed = (await bus.wait_for(lambda es: any(e.event_name == "PaymentFailed" for e in es)))[-1]
    assert_valid(failed)
    assert {k: failed.data[k] for k in ("amount", "reason", "attempt")} == {
        "amount": 44_000, "reason": "card_declined", "attempt": 1}
    view = await invoice_when(billing, invoice_id, lambda view: view["online_charge"]["status"] == "failed")
    assert view["status"] == "issued"
    assert simulator.charges == []
    # The charges to retry are listed as such, and only they (another online invoice waits for its consultation).
    await invoice_when(billing, invoice_of(await scheduling.confirm(Mode.ONLINE, CONSULTATION)))

    async def failed_ids(**params: Any) -> list[str]:
        listed = await billing.get("/invoices", params={"charge_status": "failed", **params})
        assert listed.status_code == 200, listed.text
        return [invoice["invoice_id"] for invoice in listed.json()["invoices"]]

    assert await failed_ids() == [str(invoice_id)]
    assert await failed_ids(status="paid") == []
    assert (await billing.get("/invoices", params={"charge_status": "lost"})).status_code == 422

    retry = await billing.post(f"/invoices/{invoice_id}/charge-retries")
    assert retry.status_code == 202, retry.text
    assert retry.json()["events"] == ["ChargeRequested"]
    await bus.wait_for(lambda es: any(e.event_name == "PaymentCaptured" for e in es))
    assert keys(simulator) == [("1", "declined"), ("2", "charged")]
    assert len(simulator.charges) == 1
    again = await billing.post(f"/invoices/{invoice_id}/charge-retries")
    assert again.status_code == 409
    assert again.json()["code"] == "already_paid"
    assert await failed_ids() == [], "paid: no longer a failed charge"


async def test_when_retries_run_out_the_desk_retry_reuses_the_key_and_never_charges_twice(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Gateway) -> None:
    url, simulator = gateway
    # The first call takes the money, and every reply of the worker's 3 tries comes too late.
    await fail_next(url, "timeout", count=3, delay_seconds=0.6)
    invoice_id = await completed_online(scheduling, billing)
    failed = (await bus.wait_for(lambda es: any(e.event_name == "PaymentFailed" for e in es)))[-1]
    assert_valid(failed)
    assert (failed.data["reason"], failed.data["attempt"]) == ("gateway_timeout", 1)
    assert len(simulator.charges) == 1  # taken, though billing could not know

    assert (await billing.post(f"/invoices/{invoice_id}/charge-retries")).status_code == 202
    captured = (await bus.wait_for(lambda es: any(e.event_name == "PaymentCaptured" for e in es)))[-1]
    assert len(simulator.charges) == 1
    assert captured.data["gateway_charge_id"] == simulator.charges[0]["id"]
    assert keys(simulator) == [("1", "charged"), ("1", "replayed"), ("1", "replayed"), ("1", "replayed")]


async def test_a_completion_that_overtakes_the_confirmation_is_charged_once_the_invoice_exists(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Gateway,
        database: str) -> None:
    _, simulator = gateway
    confirmation = SlotConfirmed(case_id=uuid.uuid4(), appointment_id=uuid.uuid4(), slot_id=uuid.uuid4(),
                                 start=CONSULTATION, end=CONSULTATION, department="cardiology",
                                 physician_id="dr-sato", mode=Mode.ONLINE)
    await scheduling.complete(confirmation)
    await wait_until(lambda: handled(database))
    assert simulator.calls == []
    await scheduling.publish(confirmation)
    await bus.wait_for(lambda es: any(e.event_name == "PaymentCaptured" for e in es))
    assert [e.event_name for e in bus.envelopes] == ["InvoiceIssued", "PaymentCaptured"]
    assert [charge["reference"] for charge in simulator.charges] == [str(invoice_of(confirmation))]


async def test_charge_retries_are_refused_where_they_make_no_sense(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    in_person = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    online = await scheduling.confirm(Mode.ONLINE, CONSULTATION)
    await invoice_when(billing, invoice_of(in_person))
    await invoice_when(billing, invoice_of(online))
    refused: dict[str, Any] = {}
    for name, confirmed in (("in_person", in_person), ("online_not_completed", online)):
        response = await billing.post(f"/invoices/{invoice_of(confirmed)}/charge-retries")
        assert response.status_code == 409
        refused[name] = response.json()["code"]
    assert refused == {"in_person": "paid_at_counter", "online_not_completed": "consultation_not_completed"}
