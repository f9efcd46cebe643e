"""What the cashier, the desk and auditors read about invoices: the invoice view and the day's takings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from billing import domain
from eventkit.db import retried_read
from secondopinion_contracts.codes import PaymentMethod

Rows = list[dict[str, Any]]  # named before the class, whose `list` method hides the built-in in its body


@dataclass(frozen=True)
class InvoiceQueries:
    pool: asyncpg.Pool

    @retried_read
    async def get(self, invoice_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1 AND issued", invoice_id)
        return invoice_view(row, with_history=True) if row else None

    @retried_read
    async def case_of(self, invoice_id: UUID) -> UUID | None:
        """The case of an issued invoice (None: no such invoice, or not issued yet)."""
        async with self.pool.acquire() as conn:
            case_id: UUID | None = await conn.fetchval(
                "SELECT case_id FROM invoices WHERE invoice_id = $1 AND issued", invoice_id)
        return case_id

    async def list(self, case_id: UUID | None, status: str | None, limit: int, offset: int,
                   charge_status: str | None = None) -> Rows:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT * FROM invoices
                   WHERE issued AND ($1::uuid IS NULL OR case_id = $1) AND ($2::text IS NULL OR status = $2)
                     AND ($5::text IS NULL OR state->>'charge_status' = $5)
                   ORDER BY issued_at DESC, invoice_id LIMIT $3 OFFSET $4""",
                case_id, status, limit, offset, charge_status)
        return [invoice_view(row, with_history=False) for row in rows]

    async def takings(self, day: date) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT method, sum(captured) AS captured, sum(refunded) AS refunded
                   FROM takings_entries WHERE business_date = $1 GROUP BY method""",
                day)
        sums = {row["method"]: (int(row["captured"]), int(row["refunded"])) for row in rows}
        by_method = {}
        for method in PaymentMethod:
            captured, refunded = sums.get(method.value, (0, 0))
            by_method[method.value] = {"captured": captured, "refunded": refunded, "net": captured - refunded}
        captured = sum(line["captured"] for line in by_method.values())
        refunded = sum(line["refunded"] for line in by_method.values())
        return {"date": day, "currency": "JPY", "by_method": by_method,
                "total": {"captured": captured, "refunded": refunded, "net": captured - refunded}}


    @retried_read
    async def transactions(self, day: date, limit: int, offset: int) -> Rows:
        """The day's payments and refunds (Asia/Tokyo business date) in the order the money moved, each with its
        invoice, case and receipt number: what the cashier counts the till against."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT t.event_id, t.invoice_id, i.case_id, t.method, t.captured, t.refunded, t.occurred_at,
                          r.receipt_number
                   FROM takings_entries t JOIN invoices i USING (invoice_id)
                   LEFT JOIN receipts r USING (invoice_id)
                   WHERE t.business_date = $1
                   ORDER BY t.position NULLS FIRST, t.event_id LIMIT $2 OFFSET $3""",
                day, limit, offset)
        return [{"transaction_id": row["event_id"], "invoice_id": row["invoice_id"], "case_id": row["case_id"],
                 "kind": "payment" if row["captured"] else "refund", "method": row["method"],
                 "amount": row["captured"] or row["refunded"], "at": row["occurred_at"],
                 "receipt_number": row["receipt_number"]} for row in rows]


def invoice_view(row: asyncpg.Record, *, with_history: bool) -> dict[str, Any]:
    invoice = domain.Invoice.model_validate_json(row["state"])
    view: dict[str, Any] = {
        "invoice_id": row["invoice_id"],
        "case_id": invoice.case_id,
        "appointment_id": invoice.appointment_id,
        "status": invoice.status.value,
        "mode": invoice.mode,
        "payment_channel": invoice.payment_channel,
        "currency": "JPY",
        "amount_excl_tax": invoice.amount_excl_tax,
        "tax": invoice.tax,
        "total": invoice.total,
        "tax_rate_percent": invoice.tax_rate_percent,
        "tax_rule": domain.TAX_RULE,
        "fee_schedule_effective_from": invoice.fee_schedule_effective_from,
        "consultation": {"start": invoice.consultation_start, "end": invoice.consultation_end,
                         "date": invoice.consultation_date, "completed_at": invoice.completed_at},
        "payment": ({"amount": invoice.captured_amount, "method": invoice.payment_method,
                     "captured_at": invoice.captured_at, "gateway_charge_id": invoice.gateway_charge_id}
                    if invoice.captured_amount else None),
        "refunded_total": invoice.refunded_total,
        "refundable": invoice.refundable,
        "online_charge": ({"attempt": invoice.charge_attempt, "status": invoice.charge_status,
                           "failure": invoice.charge_failure} if invoice.charge_attempt else None),
        "receipt": ({"receipt_number": invoice.receipt_number, "issued_on": invoice.receipt_issued_on,
                     "qualified_invoice_registration_number": invoice.receipt_registration_number}
                    if invoice.receipt_number else None),
        "cancellation": ({"cancelled_by": invoice.cancelled_by, "reason": invoice.cancellation_reason,
                          "void_reason": invoice.void_reason} if invoice.cancelled_by else None),
        "issued_at": row["issued_at"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }
    if with_history:
        view["history"] = json.loads(row["history"])
    return view
