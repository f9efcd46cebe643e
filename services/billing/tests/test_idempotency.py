"""Idempotency-Key on billing's money commands (eventkit.idempotency): a refund or a counter payment sent twice
with its key is taken once, and answers the same both times."""

from __future__ import annotations

import uuid

import httpx

from billing.testing import SchedulingEvents, invoice_of, invoice_when, tokyo
from eventkit.testing import scalar
from secondopinion_contracts.codes import Mode


async def events_named(database: str, name: str) -> int:
    return int(await scalar(database, "SELECT count(*) FROM events WHERE event_type = $1", name))


async def test_a_payment_and_a_refund_retried_with_their_keys_are_taken_once(
        billing: httpx.AsyncClient, scheduling: SchedulingEvents, database: str) -> None:
    confirmed = await scheduling.confirm(Mode.IN_PERSON, tokyo(2026, 12, 1, 14, 0))
    invoice_id = invoice_of(confirmed)
    await invoice_when(billing, invoice_id)
    for path, body, event in ((f"/invoices/{invoice_id}/payments", {"method": "cash", "amount": 33_000},
                               "PaymentCaptured"),
                              (f"/invoices/{invoice_id}/refunds", {"amount": 10_000, "reason": "overpayment"},
                               "RefundIssued")):
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = await billing.post(path, json=body, headers=key)
        again = await billing.post(path, json=body, headers=key)
        assert first.status_code == again.status_code == 201, first.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert await events_named(database, event) == 1
    assert (await billing.get(f"/invoices/{invoice_id}")).json()["refundable"] == 23_000
