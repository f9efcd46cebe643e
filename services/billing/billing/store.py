"""Billing's persistence: the Invoice repository over eventkit, its projections, the receipt counter and
the charge queue the charge worker takes its work from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
import pydantic_core

from billing import domain
from eventkit.aggregate import AggregateRepository
from eventkit.clock import tokyo_date
from eventkit.db import Conn, retried_read
from eventkit.events import RecordedEvent
from eventkit.store import EventStore, EventTypes, RowChanges, apply_to_rows
from secondopinion_contracts.codes import PaymentMethod
from secondopinion_contracts.events import billing as events

EVENT_TYPES = EventTypes.of(*events.EVENTS, *domain.PRIVATE_EVENTS)
STREAM_TYPE = "invoice"
CHARGES_CHANNEL = "billing_charges"


def invoice_repository(store: EventStore) -> AggregateRepository[domain.Invoice]:
    return AggregateRepository(store, STREAM_TYPE, domain.Invoice, domain.evolve)


def invoice_id_of(stream_id: str) -> UUID:
    return UUID(stream_id.removeprefix(f"{STREAM_TYPE}-"))


def _invoice_events(recorded: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    return [event for event in recorded if event.stream_type == STREAM_TYPE]


_UPSERT_INVOICES = """
    INSERT INTO invoices (invoice_id, case_id, issued, status, mode, consultation_date, total, state, history, version,
                          issued_at, updated_at)
    SELECT id, c, i, st, m, cd, t, s::jsonb, h::jsonb, v, ia, ua
    FROM unnest($1::uuid[], $2::uuid[], $3::bool[], $4::text[], $5::text[], $6::date[], $7::int[], $8::text[],
                $9::text[], $10::int[], $11::timestamptz[], $12::timestamptz[])
        AS u(id, c, i, st, m, cd, t, s, h, v, ia, ua)
    ORDER BY id
    ON CONFLICT (invoice_id) DO UPDATE SET
        case_id = EXCLUDED.case_id, issued = EXCLUDED.issued, status = EXCLUDED.status, mode = EXCLUDED.mode,
        consultation_date = EXCLUDED.consultation_date, total = EXCLUDED.total, state = EXCLUDED.state,
        history = invoices.history || EXCLUDED.history, version = EXCLUDED.version,
        issued_at = coalesce(invoices.issued_at, EXCLUDED.issued_at), updated_at = EXCLUDED.updated_at
    WHERE $13
    RETURNING invoice_id"""


_KEYS_OF_THE_ROW = {"case_id", "invoice_id"}  # in the row's own columns, not repeated in its history


class InvoiceViewProjection:
    """One row per invoice stream: the folded state (JSON), the columns queries filter on, and a history."""

    name = "invoice_view"
    tables = ("invoices", "receipts")

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        # Each invoice's state folded in Python from its events, all of a batch's rows written in one statement.
        streams: dict[UUID, list[RecordedEvent]] = {}
        for event in _invoice_events(recorded):
            streams.setdefault(invoice_id_of(event.stream_id), []).append(event)
        if streams:
            await apply_to_rows(conn, streams, read=_read_invoices, key=lambda row: row["invoice_id"],
                                write=self._write)

    async def _write(self, conn: Conn, changes: RowChanges[UUID], only_if_new: bool) -> set[UUID]:
        """Each invoice's row: its state (None: a new invoice) with its new events applied, and the receipts among
        them; the invoices written. With `only_if_new` an invoice whose row exists is not written."""
        columns: list[list[Any]] = [[] for _ in range(12)]
        for invoice_id, known, new in changes:
            state = domain.Invoice.model_validate_json(known["state"]) if known is not None else domain.Invoice()
            for event in new:
                state = domain.evolve(state, event.data)
            history = pydantic_core.to_json([{
                "event": event.name, "version": event.version, "at": event.recorded_at.isoformat(),
                "by": event.metadata.get("actor", {}),
                "data": event.data.model_dump(mode="json", exclude=_KEYS_OF_THE_ROW),
            } for event in new]).decode()
            issued_at = next((event.recorded_at for event in new if isinstance(event.data, events.InvoiceIssued)),
                             None)
            row = (invoice_id, state.case_id, state.issued, state.status.value,
                   state.mode.value if state.mode else None, state.consultation_date, state.total,
                   state.model_dump_json(), history, new[-1].version, issued_at, new[-1].recorded_at)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        written = {row["invoice_id"] for row in await conn.fetch(_UPSERT_INVOICES, *columns, not only_if_new)}
        receipts = [(event.data.receipt_number, invoice_id, event.data.issued_on)
                    for invoice_id, _, new in changes if invoice_id in written
                    for event in new if isinstance(event.data, events.ReceiptIssued)]
        if receipts:
            # The primary key is a last guard: one receipt number can never be given to two payments.
            await conn.executemany("INSERT INTO receipts (receipt_number, invoice_id, issued_on) VALUES ($1, $2, $3)",
                                   receipts)
        return written


async def _read_invoices(conn: Conn, invoice_ids: list[UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT invoice_id, state, version FROM invoices WHERE invoice_id = ANY($1::uuid[]) ORDER BY invoice_id"
        " FOR UPDATE", invoice_ids)
    return rows


class TakingsProjection:
    """Ledger lines for the day's takings: captures on their capture date, refunds on their refund date
    (Asia/Tokyo), each under the payment method the money moved by."""

    name = "takings"
    tables = ("takings_entries",)

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        for event in _invoice_events(recorded):
            data = event.data
            if isinstance(data, events.PaymentCaptured):
                await conn.execute(
                    """INSERT INTO takings_entries (event_id, invoice_id, business_date, method, captured, refunded)
                       VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (event_id) DO NOTHING""",
                    event.event_id, data.invoice_id, tokyo_date(data.captured_at), data.method.value, data.amount)
            elif isinstance(data, events.RefundIssued):
                await conn.execute(
                    """INSERT INTO takings_entries (event_id, invoice_id, business_date, method, captured, refunded)
                       SELECT $1, $2, $3, method, 0, $4 FROM takings_entries
                       WHERE invoice_id = $2 AND captured > 0 LIMIT 1
                       ON CONFLICT (event_id) DO NOTHING""",
                    event.event_id, data.invoice_id, tokyo_date(data.refunded_at or event.recorded_at), data.amount)


class ChargeQueueProjection:
    """Online charges requested and not yet settled: the charge worker's work list.

    Derived from the events (a rebuild re-queues unsettled charges, which is safe: the gateway answers a
    repeated idempotency key with the first outcome); tries, backoff and lease are the worker's own.
    """

    name = "charge_queue"
    tables = ("charge_queue",)

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        for event in _invoice_events(recorded):
            data = event.data
            if isinstance(data, domain.ChargeRequested):
                await conn.execute(
                    """INSERT INTO charge_queue (invoice_id, case_id, attempt, idempotency_key, amount, requested_at)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT (invoice_id) DO UPDATE SET
                           attempt = EXCLUDED.attempt, idempotency_key = EXCLUDED.idempotency_key,
                           amount = EXCLUDED.amount, requested_at = EXCLUDED.requested_at, tries = 0,
                           next_try_at = now(), leased_until = NULL, last_error = NULL""",
                    data.invoice_id, data.case_id, data.attempt, data.idempotency_key, data.amount, event.recorded_at)
                await conn.execute(f"NOTIFY {CHARGES_CHANNEL}")
            elif isinstance(data, events.PaymentCaptured | events.PaymentFailed | events.InvoiceVoided):
                await conn.execute("DELETE FROM charge_queue WHERE invoice_id = $1", data.invoice_id)


PROJECTIONS = (InvoiceViewProjection(), TakingsProjection(), ChargeQueueProjection())


async def take_receipt_number(conn: Conn, year: int) -> int:
    """The next receipt number of `year`, in the caller's transaction.

    A counter row, not a sequence: its row lock is held until the receipt's transaction ends, so a
    rolled-back receipt gives its number back and the numbers have no gaps (a sequence would skip one).
    """
    number: int = await conn.fetchval(
        """INSERT INTO receipt_counters (year, last_number) VALUES ($1, 1)
           ON CONFLICT (year) DO UPDATE SET last_number = receipt_counters.last_number + 1
           RETURNING last_number""",
        year)
    return number


def receipt_number(year: int, number: int) -> str:
    return f"R{year}-{number:06d}"


@dataclass(frozen=True)
class DueCharge:
    invoice_id: UUID
    case_id: UUID
    attempt: int
    idempotency_key: str
    amount: int
    tries: int


@dataclass(frozen=True)
class ChargeQueue:
    pool: asyncpg.Pool

    async def claim(self, limit: int, lease_seconds: float) -> list[DueCharge]:
        """Lease due charges, so that one replica's worker calls the gateway for each at a time."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """UPDATE charge_queue q
                   SET leased_until = now() + make_interval(secs => $2), tries = q.tries + 1
                   FROM (SELECT invoice_id FROM charge_queue
                         WHERE next_try_at <= now() AND (leased_until IS NULL OR leased_until < now())
                         ORDER BY next_try_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
                   WHERE q.invoice_id = due.invoice_id
                   RETURNING q.invoice_id, q.case_id, q.attempt, q.idempotency_key, q.amount, q.tries""",
                limit, lease_seconds)
        return [DueCharge(**dict(row)) for row in rows]

    async def retry_later(self, charge: DueCharge, delay_seconds: float, error: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """UPDATE charge_queue SET leased_until = NULL, last_error = $3,
                       next_try_at = now() + make_interval(secs => $4)
                   WHERE invoice_id = $1 AND attempt = $2""",
                charge.invoice_id, charge.attempt, error[:500], delay_seconds)

    async def discard(self, charge: DueCharge) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM charge_queue WHERE invoice_id = $1 AND attempt = $2",
                               charge.invoice_id, charge.attempt)


@dataclass(frozen=True)
class InvoiceQueries:
    pool: asyncpg.Pool

    @retried_read
    async def get(self, invoice_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1 AND issued", invoice_id)
        return invoice_view(row, with_history=True) if row else None

    async def list(self, case_id: UUID | None, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT * FROM invoices
                   WHERE issued AND ($1::uuid IS NULL OR case_id = $1) AND ($2::text IS NULL OR status = $2)
                   ORDER BY issued_at DESC, invoice_id LIMIT $3 OFFSET $4""",
                case_id, status, limit, offset)
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

