"""Billing end to end on the real PostgreSQL and RabbitMQ: scheduling's events in, HTTP commands, billing's
events out on the bus (valid against their checked-in schemas)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing.bootstrap import build
from billing.repository import STREAM_TYPE
from billing.testing import (
    QUALIFIED_INVOICE_NUMBER,
    SchedulingEvents,
    handled,
    invoice_of,
    invoice_when,
    settings_for_tests,
    tokyo,
)
from eventkit.runtime import wait_until
from eventkit.testing import (
    EventCollector,
    SettableClock,
    assert_valid,
    bearer,
    fetch,
    running_app,
    scalar,
)
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode
from secondopinion_contracts.events.scheduling import (
    SlotConfirmed,
)

CONSULTATION = tokyo(2026, 12, 1, 14, 0)  # the fixture clock says 2026-12-01 09:30 in Tokyo



async def count(database: str, query: str, *args: Any) -> int:
    return int(await scalar(database, query, *args))


async def stored(database: str, name: str) -> int:
    return await count(database, "SELECT count(*) FROM events WHERE event_type = $1", name)


async def seen(bus: EventCollector, name: str, times: int = 1) -> list[CloudEvent]:
    await bus.wait_for(lambda envelopes: sum(e.event_name == name for e in envelopes) >= times)
    return bus.of_type(name)


async def pay(client: httpx.AsyncClient, invoice_id: uuid.UUID, amount: int = 33_000,
              method: str = "cash") -> httpx.Response:
    return await client.post(f"/invoices/{invoice_id}/payments", json={"method": method, "amount": amount})


async def paid_in_person(billing: httpx.AsyncClient, scheduling: SchedulingEvents,
                         method: str = "cash") -> uuid.UUID:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    response = await pay(billing, invoice_of(confirmed), method=method)
    assert response.status_code == 201, response.text
    return invoice_of(confirmed)


async def test_an_in_person_fee_is_invoiced_paid_at_the_counter_and_receipted(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    invoice_id = invoice_of(confirmed)
    invoice = await invoice_when(billing, invoice_id)
    assert {key: invoice[key] for key in ("status", "mode", "amount_excl_tax", "tax", "total", "payment_channel")} == {
        "status": "issued", "mode": "in_person", "amount_excl_tax": 30_000, "tax": 3_000, "total": 33_000,
        "payment_channel": "counter_before_consultation"}
    assert invoice["consultation"]["date"] == "2026-12-01"

    payment = await pay(billing, invoice_id, method="card")
    assert payment.status_code == 201, payment.text
    assert payment.json()["events"] == ["PaymentCaptured"]
    assert payment.json()["status"] == "paid"
    receipt = await billing.post(f"/invoices/{invoice_id}/receipt")
    assert receipt.status_code == 201, receipt.text
    assert receipt.json()["invoice"]["receipt"] == {"receipt_number": "R2026-000001", "issued_on": "2026-12-01",
                                                    "qualified_invoice_registration_number": QUALIFIED_INVOICE_NUMBER}

    await seen(bus, "ReceiptIssued")
    issued, captured, receipted = (bus.of_type(name) for name in ("InvoiceIssued", "PaymentCaptured", "ReceiptIssued"))
    assert issued[0].data == {
        "case_id": str(confirmed.case_id), "invoice_id": str(invoice_id),
        "appointment_id": str(confirmed.appointment_id), "mode": "in_person", "amount_excl_tax": 30_000,
        "tax": 3_000, "total": 33_000, "tax_rate_percent": 10, "currency": "JPY",
        "payment_channel": "counter_before_consultation", "fee_schedule_effective_from": "2025-05-01"}
    assert {k: captured[0].data[k] for k in ("amount", "method", "appointment_id", "captured_at")} == {
        "amount": 33_000, "method": "card", "appointment_id": str(confirmed.appointment_id),
        "captured_at": "2026-12-01T00:30:00Z"}
    assert captured[0].actorid == "cashier-7"
    assert {k: receipted[0].data[k] for k in ("receipt_number", "total", "tax",
                                              "qualified_invoice_registration_number")} == {
        "receipt_number": "R2026-000001", "total": 33_000, "tax": 3_000,
        "qualified_invoice_registration_number": QUALIFIED_INVOICE_NUMBER}
    for envelope in bus.envelopes:
        assert_valid(envelope)
        assert envelope.subject == str(confirmed.case_id)
    listed = (await billing.get("/invoices", params={"case_id": str(confirmed.case_id)})).json()["invoices"]
    assert [row["invoice_id"] for row in listed] == [str(invoice_id)]
    history = (await billing.get(f"/invoices/{invoice_id}")).json()["history"]
    assert [entry["event"] for entry in history] == [
        "ConsultationScheduled", "InvoiceIssued", "PaymentCaptured", "ReceiptIssued"]


async def test_the_online_fee_is_44000_yen_charged_to_the_card_when_the_consultation_is_completed(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector, gateway: Any) -> None:
    _, simulator = gateway
    confirmed = await scheduling.confirm(Mode.ONLINE, CONSULTATION)
    invoice = await invoice_when(billing, invoice_of(confirmed))
    assert (invoice["amount_excl_tax"], invoice["tax"], invoice["total"], invoice["payment_channel"]) == (
        40_000, 4_000, 44_000, "telemedicine_platform_card")
    assert (await pay(billing, invoice_of(confirmed), amount=44_000)).json()["code"] == "paid_online"
    assert simulator.calls == []  # nothing is charged before the consultation

    await scheduling.complete(confirmed)
    captured = (await seen(bus, "PaymentCaptured"))[0]
    assert_valid(captured)
    assert [charge["amount"] for charge in simulator.charges] == [44_000]
    assert captured.data["method"] == "online_card"
    assert captured.data["gateway_charge_id"] == simulator.charges[0]["id"]
    assert captured.actorrole == "system"
    paid = await invoice_when(billing, invoice_of(confirmed), lambda view: view["status"] == "paid")
    assert paid["online_charge"] == {"attempt": 1, "status": "captured", "failure": None}


async def test_a_duplicated_slot_confirmed_never_makes_a_second_invoice(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector) -> None:
    event_id = uuid.uuid4()
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION, event_id=event_id)
    await scheduling.publish(confirmed, event_id=event_id)  # redelivered: same event id
    await scheduling.publish(confirmed)  # republished: another event id, same appointment
    await scheduling.publish(confirmed)
    await wait_until(lambda: handled(database, 3))
    await seen(bus, "InvoiceIssued")
    assert await stored(database, "InvoiceIssued") == 1
    listed = (await billing.get("/invoices", params={"case_id": str(confirmed.case_id)})).json()["invoices"]
    assert len(listed) == 1
    assert len(bus.of_type("InvoiceIssued")) == 1


async def test_a_duplicated_consultation_completed_never_charges_twice(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector,
        gateway: Any) -> None:
    _, simulator = gateway
    confirmed = await scheduling.confirm(Mode.ONLINE, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    event_id = uuid.uuid4()
    await scheduling.complete(confirmed, event_id=event_id)
    await scheduling.complete(confirmed, event_id=event_id)
    await scheduling.complete(confirmed)
    await wait_until(lambda: handled(database, 3))
    await seen(bus, "PaymentCaptured")
    assert await stored(database, "ChargeRequested") == 1
    assert await stored(database, "PaymentCaptured") == 1
    assert len(simulator.calls) == 1
    assert len(simulator.charges) == 1


async def test_counter_payment_refusals_say_why_and_record_nothing(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, clock: SettableClock) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    invoice_id = invoice_of(confirmed)
    await invoice_when(billing, invoice_id)
    before = await count(database, "SELECT count(*) FROM events")

    wrong_amount = await pay(billing, invoice_id, amount=30_000)
    assert wrong_amount.status_code == 409
    assert wrong_amount.json()["code"] == "wrong_amount"
    assert "33000" in wrong_amount.json()["detail"]
    clock.now = tokyo(2026, 11, 30, 16, 0)
    assert (await pay(billing, invoice_id)).json()["code"] == "not_consultation_day"
    clock.now = tokyo(2026, 12, 1, 9, 30)
    for body in ({"method": "cash", "amount": 33000.0}, {"method": "cash", "amount": "33000"},
                 {"method": "online_card", "amount": 33_000}, {"method": "cash", "amount": -1},
                 {"method": "cash"}, {"method": "cash", "amount": 33_000, "tip": 1}):
        response = await billing.post(f"/invoices/{invoice_id}/payments", json=body)
        assert response.status_code == 422, body
        assert all("loc" in error and "msg" in error for error in response.json()["detail"])
    assert (await pay(billing, uuid.uuid4())).status_code == 404
    not_a_uuid = await billing.post("/invoices/not-a-uuid/payments", json={"method": "cash", "amount": 1})
    assert not_a_uuid.status_code == 422
    assert await count(database, "SELECT count(*) FROM events") == before

    assert (await pay(billing, invoice_id)).status_code == 201
    after_payment = await count(database, "SELECT count(*) FROM events")
    second = await pay(billing, invoice_id)
    assert second.status_code == 409
    assert second.json()["code"] == "already_paid"
    assert await count(database, "SELECT count(*) FROM events") == after_payment


async def test_concurrent_captures_of_one_invoice_take_the_fee_once(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    responses = await asyncio.gather(*(pay(billing, invoice_of(confirmed)) for _ in range(5)))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409, 409]
    assert await stored(database, "PaymentCaptured") == 1


async def test_a_reschedule_keeps_the_invoice_and_moves_the_payment_day(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, clock: SettableClock,
        bus: EventCollector) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    await scheduling.reschedule(confirmed, CONSULTATION + timedelta(days=2))
    moved = await invoice_when(billing, invoice_of(confirmed),
                               lambda view: view["consultation"]["date"] == "2026-12-03")
    assert (moved["total"], moved["status"]) == (33_000, "issued")
    assert await stored(database, "InvoiceIssued") == 1
    assert (await pay(billing, invoice_of(confirmed))).json()["code"] == "not_consultation_day"
    clock.now = tokyo(2026, 12, 3, 9, 0)
    assert (await pay(billing, invoice_of(confirmed))).status_code == 201
    assert len(bus.of_type("InvoiceVoided")) == 0


async def test_a_cancellation_before_payment_voids_the_invoice(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    await scheduling.cancel(confirmed, CancelledBy.PATIENT, reason=CancellationReason.CASE_WITHDRAWN)
    voided = (await seen(bus, "InvoiceVoided"))[0]
    assert_valid(voided)
    assert voided.data["reason"] == "case_withdrawn"
    view = await invoice_when(billing, invoice_of(confirmed), lambda view: view["status"] == "void")
    assert view["cancellation"]["cancelled_by"] == "patient"
    refused = await pay(billing, invoice_of(confirmed))
    assert refused.status_code == 409
    assert refused.json()["code"] == "invoice_void"


async def test_a_cancellation_that_overtakes_the_confirmation_leaves_nothing_to_pay(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector) -> None:
    appointment_id, case_id = uuid.uuid4(), uuid.uuid4()
    early = tokyo(2026, 11, 20)
    confirmation = SlotConfirmed(case_id=case_id, appointment_id=appointment_id, slot_id=uuid.uuid4(),
                                 start=CONSULTATION, end=CONSULTATION + timedelta(hours=1), department="cardiology",
                                 physician_id="dr-sato", mode=Mode.IN_PERSON)
    await scheduling.cancel(confirmation, CancelledBy.PATIENT, time=early + timedelta(days=1))
    await wait_until(lambda: handled(database, 1))
    await scheduling.publish(confirmation, time=early)
    await wait_until(lambda: handled(database, 2))
    assert await stored(database, "InvoiceIssued") == 0
    assert (await billing.get(f"/invoices/{invoice_of(confirmation)}")).status_code == 404
    assert (await billing.get("/invoices", params={"case_id": str(case_id)})).json()["invoices"] == []
    assert await count(database, "SELECT count(*) FROM outbox") == 0  # nothing was, or will be, published


async def test_the_hospital_cancelling_after_payment_refunds_in_full(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, bus: EventCollector) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(confirmed))
    assert (await pay(billing, invoice_of(confirmed))).status_code == 201
    await scheduling.cancel(confirmed, CancelledBy.HOSPITAL, reason=CancellationReason.PHYSICIAN_UNAVAILABLE)
    refund = (await seen(bus, "RefundIssued"))[0]
    assert_valid(refund)
    assert {k: refund.data[k] for k in ("amount", "reason", "refunded_total", "fully_refunded")} == {
        "amount": 33_000, "reason": "cancelled_by_hospital", "refunded_total": 33_000, "fully_refunded": True}
    view = await invoice_when(billing, invoice_of(confirmed), lambda view: view["status"] == "refunded")
    assert view["refundable"] == 0
    assert bus.of_type("InvoiceVoided") == []


async def test_refunds_never_exceed_what_was_captured(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector) -> None:
    invoice_id = await paid_in_person(billing, scheduling)
    first = await billing.post(f"/invoices/{invoice_id}/refunds", json={"amount": 10_000, "reason": "overpayment"})
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["invoice"]["refundable"]) == ("partially_refunded", 23_000)
    before = await count(database, "SELECT count(*) FROM events")
    too_much = await billing.post(f"/invoices/{invoice_id}/refunds", json={"amount": 23_001, "reason": "other"})
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "refund_exceeds_captured"
    for body in ({"amount": 0, "reason": "other"}, {"amount": 100.5, "reason": "other"},
                 {"amount": 100, "reason": "because"}):
        assert (await billing.post(f"/invoices/{invoice_id}/refunds", json=body)).status_code == 422
    assert await count(database, "SELECT count(*) FROM events") == before
    rest = await billing.post(f"/invoices/{invoice_id}/refunds", json={"amount": 23_000, "reason": "goodwill"})
    assert rest.json()["status"] == "refunded"
    again = await billing.post(f"/invoices/{invoice_id}/refunds", json={"amount": 1, "reason": "other"})
    assert again.json()["code"] == "refund_exceeds_captured"
    refunds = await seen(bus, "RefundIssued", 2)
    assert [(r.data["amount"], r.data["refunded_total"], r.data["fully_refunded"]) for r in refunds] == [
        (10_000, 10_000, False), (23_000, 33_000, True)]
    for refund in refunds:
        assert_valid(refund)
    unpaid = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(unpaid))
    nothing = await billing.post(f"/invoices/{invoice_of(unpaid)}/refunds", json={"amount": 1, "reason": "other"})
    assert nothing.json()["code"] == "nothing_captured"


async def test_receipt_numbers_are_unique_and_sequential_under_concurrent_requests(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector) -> None:
    invoices = [await paid_in_person(billing, scheduling) for _ in range(6)]
    requests = [billing.post(f"/invoices/{invoice_id}/receipt") for invoice_id in invoices * 2]
    responses = await asyncio.gather(*requests)
    issued = [r.json()["invoice"]["receipt"]["receipt_number"] for r in responses if r.status_code == 201]
    refused = [r.json() for r in responses if r.status_code == 409]
    assert sorted(issued) == [f"R2026-{n:06d}" for n in range(1, 7)]
    assert len(refused) == 6
    assert {body["code"] for body in refused} == {"receipt_already_issued"}
    assert {body["reasons"][0] for body in refused} == set(issued)
    rows = await fetch(database, "SELECT receipt_number, invoice_id FROM receipts")
    assert len({row["invoice_id"] for row in rows}) == 6
    assert await count(database, "SELECT last_number FROM receipt_counters WHERE year = 2026") == 6
    receipts = await seen(bus, "ReceiptIssued", 6)
    assert sorted(r.data["receipt_number"] for r in receipts) == sorted(issued)
    unpaid = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    await invoice_when(billing, invoice_of(unpaid))
    assert (await billing.post(f"/invoices/{invoice_of(unpaid)}/receipt")).json()["code"] == "not_paid"
    assert await count(database, "SELECT last_number FROM receipt_counters WHERE year = 2026") == 6


async def test_the_days_takings_are_captured_minus_refunded_by_method(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    cash = await paid_in_person(billing, scheduling, method="cash")
    await paid_in_person(billing, scheduling, method="card")
    await paid_in_person(billing, scheduling, method="cash")
    assert (await billing.post(f"/invoices/{cash}/refunds", json={"amount": 5_000, "reason": "goodwill"})
            ).status_code == 201
    takings = (await billing.get("/takings", params={"date": "2026-12-01"})).json()
    assert takings["by_method"] == {
        "cash": {"captured": 66_000, "refunded": 5_000, "net": 61_000},
        "card": {"captured": 33_000, "refunded": 0, "net": 33_000},
        "online_card": {"captured": 0, "refunded": 0, "net": 0}}
    assert takings["total"] == {"captured": 99_000, "refunded": 5_000, "net": 94_000}
    assert (await billing.get("/takings")).json()["total"]["net"] == 94_000  # today, by the service clock
    other_day = (await billing.get("/takings", params={"date": "2026-12-02"})).json()
    assert other_day["total"] == {"captured": 0, "refunded": 0, "net": 0}
    assert (await billing.get("/takings", params={"date": "yesterday"})).status_code == 422


async def test_the_days_transactions_list_each_payment_and_refund_in_order_paged(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    first = await paid_in_person(billing, scheduling, method="cash")
    second = await paid_in_person(billing, scheduling, method="card")
    assert (await billing.post(f"/invoices/{first}/receipt")).status_code == 201
    assert (await billing.post(f"/invoices/{first}/refunds", json={"amount": 5_000, "reason": "goodwill"})
            ).status_code == 201
    day = (await billing.get("/transactions", params={"date": "2026-12-01"})).json()
    listed = [(t["invoice_id"], t["kind"], t["method"], t["amount"]) for t in day["transactions"]]
    assert listed == [(str(first), "payment", "cash", 33_000), (str(second), "payment", "card", 33_000),
                      (str(first), "refund", "cash", 5_000)]
    assert day["transactions"][0]["receipt_number"] == "R2026-000001"
    assert day["transactions"][1]["receipt_number"] is None
    assert all(t["case_id"] and t["at"] for t in day["transactions"])
    assert day["next_offset"] is None
    # The list sums to the day's takings: the till is closed against both.
    takings = (await billing.get("/takings", params={"date": "2026-12-01"})).json()
    signed = sum(t["amount"] if t["kind"] == "payment" else -t["amount"] for t in day["transactions"])
    assert signed == takings["total"]["net"]

    paged = (await billing.get("/transactions", params={"date": "2026-12-01", "limit": 2})).json()
    assert [t["transaction_id"] for t in paged["transactions"]] == [
        t["transaction_id"] for t in day["transactions"][:2]]
    assert paged["next_offset"] == 2
    rest = (await billing.get("/transactions", params={"date": "2026-12-01", "offset": 2})).json()
    assert [t["kind"] for t in rest["transactions"]] == ["refund"]
    assert rest["next_offset"] is None
    assert (await billing.get("/transactions", params={"date": "2026-12-02"})).json()["transactions"] == []
    assert (await billing.get("/transactions")).json()["transactions"] == day["transactions"]  # today
    assert (await billing.get("/transactions", params={"date": "yesterday"})).status_code == 422
    assert (await billing.get("/transactions", headers=bearer("coordinator"))).status_code == 403
    runtime = billing._transport.app.state.runtime  # type: ignore[attr-defined]
    await runtime.store.rebuild_projections()
    assert (await billing.get("/transactions", params={"date": "2026-12-01"})).json() == day
    # The invoices are paged the same way.
    latest = (await billing.get("/invoices", params={"limit": 1})).json()
    assert (len(latest["invoices"]), latest["next_offset"]) == (1, 1)
    earlier = (await billing.get("/invoices", params={"limit": 1, "offset": 1})).json()
    assert earlier["next_offset"] is None
    assert {latest["invoices"][0]["invoice_id"], earlier["invoices"][0]["invoice_id"]} == {str(first), str(second)}


async def test_a_later_fee_change_leaves_issued_invoices_alone(database: str, rabbitmq_url: str) -> None:
    clock = SettableClock(tokyo(2026, 12, 1, 9, 30))
    scheduling = SchedulingEvents(rabbitmq_url)
    unused_gateway = "http://127.0.0.1:9"  # nothing is charged here
    original = settings_for_tests(database, rabbitmq_url, unused_gateway)
    async with running_app(build(original, clock=clock), headers=bearer("auditor")) as billing:
        before = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION + timedelta(days=7))
        assert (await invoice_when(billing, invoice_of(before)))["total"] == 33_000
    schedule = [
        {"effective_from": "2025-05-01", "tax_rate_percent": 10, "fees": {"in_person": 30000, "online": 40000}},
        {"effective_from": "2026-12-05", "tax_rate_percent": 10, "fees": {"in_person": 35000, "online": 45000}}]
    changed = settings_for_tests(database, rabbitmq_url, unused_gateway, BILLING_FEE_SCHEDULE=schedule)
    async with running_app(build(changed, clock=clock), headers=bearer("auditor")) as billing:
        after = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION + timedelta(days=7))
        earlier = await scheduling.confirm(Mode.ONLINE, CONSULTATION)
        assert (await invoice_when(billing, invoice_of(after)))["total"] == 38_500
        assert (await invoice_when(billing, invoice_of(earlier)))["total"] == 44_000
        unchanged = await invoice_when(billing, invoice_of(before))
        assert (unchanged["total"], unchanged["fee_schedule_effective_from"]) == (33_000, "2025-05-01")
        runtime = billing._transport.app.state.runtime  # type: ignore[attr-defined]
        await runtime.store.rebuild_projections()
        assert (await invoice_when(billing, invoice_of(before)))["total"] == 33_000


async def test_projection_rebuild_gives_the_same_views_and_takings(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    invoice_id = await paid_in_person(billing, scheduling)
    await billing.post(f"/invoices/{invoice_id}/refunds", json={"amount": 3_000, "reason": "goodwill"})
    await billing.post(f"/invoices/{invoice_id}/receipt")
    live = (await billing.get(f"/invoices/{invoice_id}")).json()
    takings = (await billing.get("/takings", params={"date": "2026-12-01"})).json()
    runtime = billing._transport.app.state.runtime  # type: ignore[attr-defined]
    assert await runtime.store.rebuild_projections() == 5
    assert (await billing.get(f"/invoices/{invoice_id}")).json() == live
    assert (await billing.get("/takings", params={"date": "2026-12-01"})).json() == takings


async def test_an_invoices_events_applied_again_from_the_first_change_nothing(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    # A new invoice's row is written without reading it first; if the row exists (its first event was applied
    # before), the events are applied as any others: only the versions the row does not have yet.
    invoice_id = await paid_in_person(billing, scheduling)
    await billing.post(f"/invoices/{invoice_id}/receipt")
    live = (await billing.get(f"/invoices/{invoice_id}")).json()
    runtime = billing._transport.app.state.runtime  # type: ignore[attr-defined]
    recorded = await runtime.store.load(f"{STREAM_TYPE}-{invoice_id}")
    assert recorded[0].version == 1
    assert any(event.name == "ReceiptIssued" for event in recorded)
    async with runtime.store.transaction() as conn:
        for projection in runtime.store.projections:
            await projection.apply(conn, recorded)
    assert (await billing.get(f"/invoices/{invoice_id}")).json() == live


async def test_invoices_interleaved_in_one_batch_some_half_applied_are_projected_as_each_alone(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents) -> None:
    # The view writes all the invoices of one call together (a consumer's batch, a rebuild's): each must come out
    # as if its events had been applied one invoice at a time, whatever the order across invoices.
    paid = [await paid_in_person(billing, scheduling) for _ in range(3)]
    assert (await billing.post(f"/invoices/{paid[0]}/receipt")).status_code == 201
    unpaid = invoice_of(await scheduling.confirm(Mode.IN_PERSON, CONSULTATION))
    await invoice_when(billing, unpaid)
    invoice_ids = [*paid, unpaid]
    live = [(await billing.get(f"/invoices/{invoice_id}")).json() for invoice_id in invoice_ids]
    runtime = billing._transport.app.state.runtime  # type: ignore[attr-defined]
    streams = [await runtime.store.load(f"{STREAM_TYPE}-{invoice_id}") for invoice_id in invoice_ids]
    interleaved = sorted((event for stream in streams for event in stream), key=lambda event: (event.version,
                                                                                              event.stream_id))
    assert interleaved[0].stream_id != interleaved[1].stream_id
    [view] = [projection for projection in runtime.store.projections if projection.name == "invoice_view"]
    async with runtime.store.transaction() as conn:
        await conn.execute("TRUNCATE invoices, receipts")
        await view.apply(conn, streams[1][:1])  # one invoice's first event applied before: that row exists
        await view.apply(conn, interleaved)
    assert [(await billing.get(f"/invoices/{invoice_id}")).json() for invoice_id in invoice_ids] == live


async def test_health_and_readiness_include_the_charge_worker(billing: httpx.AsyncClient) -> None:
    assert (await billing.get("/healthz")).json() == {"status": "alive", "service": "billing"}
    ready = await billing.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["charge_worker"] is True
    assert ready.json()["checks"]["consumer_attached"] is True
    assert (await billing.get(f"/invoices/{uuid.uuid4()}")).status_code == 404
    assert (await billing.get("/invoices", params={"status": "lost"})).status_code == 422


async def test_money_is_handled_by_the_cashier_and_every_command_records_who(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str, bus: EventCollector) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, CONSULTATION)
    invoice_id = invoice_of(confirmed)
    await invoice_when(billing, invoice_id)
    body = {"method": "cash", "amount": 33_000}
    for role in ("coordinator", "physician", "auditor"):
        refused = await billing.post(f"/invoices/{invoice_id}/payments", json=body,
                                     headers=bearer(role, subject=f"{role}-1"))
        assert refused.status_code == 403, role
    assert (await billing.post(f"/invoices/{invoice_id}/payments", json=body, headers={"Authorization": ""})
            ).status_code == 401
    assert await stored(database, "PaymentCaptured") == 0
    assert (await billing.post(f"/invoices/{invoice_id}/payments", json=body,
                               headers=bearer("cashier", subject="cashier-9"))).status_code == 201
    refused = await billing.post(f"/invoices/{invoice_id}/receipt", headers=bearer("coordinator", subject="desk-3"))
    assert refused.status_code == 403  # receipts are the cashier's
    receipt = await billing.post(f"/invoices/{invoice_id}/receipt", headers=bearer("cashier", subject="desk-3"))
    assert receipt.status_code == 201
    await seen(bus, "ReceiptIssued")
    actors = {e.event_name: (e.actorid, e.actorrole) for e in bus.envelopes}
    assert actors["PaymentCaptured"] == ("cashier-9", "cashier")
    assert actors["ReceiptIssued"] == ("desk-3", "cashier")
    assert actors["InvoiceIssued"] == ("billing", "system")
    takings = await billing.get("/takings", headers=bearer("coordinator"))
    assert takings.status_code == 403


@pytest.mark.parametrize("path", ["/invoices/{id}/receipt", "/invoices/{id}/charge-retries"])
async def test_commands_on_an_unknown_invoice_are_404(billing: httpx.AsyncClient, path: str) -> None:
    response = await billing.post(path.format(id=uuid.uuid4()))
    assert response.status_code == 404
