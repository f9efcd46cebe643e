"""Billing's write side: the Invoice stream over eventkit's store, and the receipt counter a receipt is numbered by
in the same transaction."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from billing import domain
from eventkit.aggregate import AggregateType
from eventkit.db import Conn
from eventkit.store import EventTypes
from eventkit.unit_of_work import UnitOfWork, connection_of
from secondopinion_contracts.events import billing as events

EVENT_TYPES = EventTypes.of(*events.EVENTS, *domain.PRIVATE_EVENTS)
STREAM_TYPE = "invoice"
INVOICES = AggregateType(STREAM_TYPE, domain.Invoice, domain.evolve)


def invoice_id_of(stream_id: str) -> UUID:
    return UUID(stream_id.removeprefix(f"{STREAM_TYPE}-"))


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


class ReceiptBook(Protocol):
    """The numbers receipts are issued under, in the handler's unit of work. `PostgresReceiptBook` in the service;
    a fake in handler tests."""

    async def next_number(self, uow: UnitOfWork, year: int) -> str:
        """The year's next receipt number, given back if the unit of work does not commit (no gaps)."""
        ...


class PostgresReceiptBook:
    async def next_number(self, uow: UnitOfWork, year: int) -> str:
        return receipt_number(year, await take_receipt_number(await connection_of(uow), year))
