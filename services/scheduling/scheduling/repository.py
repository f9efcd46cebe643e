"""Scheduling's write side: the Slot and CaseSchedule streams over eventkit's store, and what the handlers read
besides them (a physician's slot times, under a lock on their schedule)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from eventkit.aggregate import AggregateType
from eventkit.db import Conn
from eventkit.store import EventTypes
from eventkit.unit_of_work import UnitOfWork, connection_of
from scheduling import domain
from scheduling.events import CASE_PRIVATE_EVENTS, SLOT_EVENTS
from secondopinion_contracts.events import scheduling as published

EVENT_TYPES = EventTypes.of(*published.EVENTS, *SLOT_EVENTS, *CASE_PRIVATE_EVENTS)
SLOT_STREAM = "slot"
CASE_STREAM = "case_schedule"


def _no_slot() -> domain.Slot | None:
    return None


SLOTS: AggregateType[domain.Slot | None] = AggregateType(SLOT_STREAM, _no_slot, domain.evolve_slot)
CASES = AggregateType(CASE_STREAM, domain.CaseSchedule, domain.evolve)


async def lock_physician_schedule(conn: Conn, physician_id: str) -> None:
    """Serialize slot openings per physician until commit, so overlap checks see each other's slots."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('scheduling-physician:' || $1))", physician_id)


async def physician_slot_times(conn: Conn, physician_id: str, first: datetime,
                               last: datetime) -> list[tuple[datetime, datetime]]:
    rows = await conn.fetch(
        "SELECT starts_at, ends_at FROM slot_view WHERE physician_id = $1 AND starts_at < $3 AND ends_at > $2",
        physician_id, first, last)
    return [(row["starts_at"], row["ends_at"]) for row in rows]


class PhysicianSchedules(Protocol):
    """Which times a physician's slots take, for a new opening's overlap check, in the handler's unit of work.
    `PostgresPhysicianSchedules` in the service; a fake in handler tests."""

    async def taken(self, uow: UnitOfWork, physician_id: str, first: datetime,
                    last: datetime) -> list[tuple[datetime, datetime]]:
        """The physician's slot times overlapping [first, last]; held for the physician until the unit of work ends,
        so that two openings for one physician check against each other's slots."""
        ...


class PostgresPhysicianSchedules:
    async def taken(self, uow: UnitOfWork, physician_id: str, first: datetime,
                    last: datetime) -> list[tuple[datetime, datetime]]:
        conn = await connection_of(uow)
        await lock_physician_schedule(conn, physician_id)
        return await physician_slot_times(conn, physician_id, first, last)
