"""Billing's read models, kept in the transaction of the events they reflect: the invoices with their receipts, the
takings ledger, and the charge queue the charge worker takes its work from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import pydantic_core

from billing import domain
from billing.repository import STREAM_TYPE, invoice_id_of
from eventkit.clock import tokyo_date
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.read_models import RowChanges, apply_to_rows
from secondopinion_contracts.events import billing as events

CHARGES_CHANNEL = "billing_charges"


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
                    """INSERT INTO takings_entries
                           (event_id, invoice_id, business_date, method, captured, refunded, occurred_at, position)
                       VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT (event_id) DO NOTHING""",
                    event.event_id, data.invoice_id, tokyo_date(data.captured_at), data.method.value, data.amount,
                    data.captured_at, event.position)
            elif isinstance(data, events.RefundIssued):
                refunded_at = data.refunded_at or event.recorded_at
                await conn.execute(
                    """INSERT INTO takings_entries
                           (event_id, invoice_id, business_date, method, captured, refunded, occurred_at, position)
                       SELECT $1, $2, $3, method, 0, $4, $5, $6 FROM takings_entries
                       WHERE invoice_id = $2 AND captured > 0 LIMIT 1
                       ON CONFLICT (event_id) DO NOTHING""",
                    event.event_id, data.invoice_id, tokyo_date(refunded_at), data.amount, refunded_at, event.position)


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
