"""What the desk reads about slots, schedules and appointments, from scheduling's read models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.clock import TOKYO
from eventkit.db import retried_read
from scheduling import domain


def _slot_row(row: asyncpg.Record) -> dict[str, Any]:
    held = row["current_status"] == "held"
    return {
        "slot_id": row["slot_id"], "department": row["department"], "physician_id": row["physician_id"],
        "start": row["starts_at"], "end": row["ends_at"], "date": row["local_date"],
        "local_start": row["starts_at"].astimezone(TOKYO).strftime("%H:%M"),
        "status": row["current_status"],
        "held_for_case": row["held_for_case"] if held else None,
        "hold_expires_at": row["hold_expires_at"] if held else None,
        "booked_for_case": row["booked_for_case"], "appointment_id": row["appointment_id"],
    }


def _appointment_row(row: asyncpg.Record) -> dict[str, Any]:
    cancellation = ({"reason": row["cancellation_reason"], "by": row["cancelled_by"], "at": row["cancelled_at"]}
                    if row["cancellation_reason"] else None)
    return {
        "appointment_id": row["appointment_id"], "case_id": row["case_id"], "status": row["status"],
        "mode": row["mode"], "department": row["department"], "physician_id": row["physician_id"],
        "slot_id": row["slot_id"], "start": row["starts_at"], "end": row["ends_at"], "date": row["local_date"],
        "local_start": row["starts_at"].astimezone(TOKYO).strftime("%H:%M"),
        "slip_issued_on": row["slip_issued_on"], "clinics_booking_ref": row["clinics_booking_ref"],
        "fee_paid": row["fee_paid"], "reschedules": json.loads(row["reschedules"]), "cancellation": cancellation,
        "completed_at": row["completed_at"], "no_show_recorded_at": row["no_show_recorded_at"],
        "confirmed_at": row["confirmed_at"],
    }


# The fee recorded for a case belongs to its current appointment only.
_APPOINTMENT_SELECT = """
    SELECT a.*, COALESCE(c.appointment_id = a.appointment_id AND c.fee_paid, false) AS fee_paid
    FROM appointment_view a LEFT JOIN case_schedule_view c USING (case_id)"""

_SLOT_STATUS = "CASE WHEN status = 'held' AND hold_expires_at <= $1 THEN 'open' ELSE status END"


@dataclass(frozen=True)
class ScheduleQueries:
    pool: asyncpg.Pool

    async def slots(self, department: str, first: date, last: date, status: str | None,
                    now: datetime) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT *, {_SLOT_STATUS} AS current_status FROM slot_view
                    WHERE department = $2 AND local_date BETWEEN $3 AND $4
                      AND ($5::text IS NULL OR {_SLOT_STATUS} = $5)
                    ORDER BY starts_at, physician_id""",
                now, department, first, last, status)
        return [_slot_row(row) for row in rows]

    async def slot(self, slot_id: UUID, now: datetime) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT *, {_SLOT_STATUS} AS current_status FROM slot_view WHERE slot_id = $2",
                                      now, slot_id)
        return _slot_row(row) if row else None

    @retried_read
    async def case_schedule(self, case_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM case_schedule_view WHERE case_id = $1", case_id)
        if row is None or row["status"] == domain.CaseStatus.NEW.value:
            return None
        return {
            "case_id": row["case_id"], "status": row["status"], "department": row["department"], "mode": row["mode"],
            "candidates": json.loads(row["candidates"]), "hold_expires_at": row["hold_expires_at"],
            "appointment_id": row["appointment_id"], "fee_paid": row["fee_paid"], "version": row["version"],
        }

    @retried_read
    async def appointment(self, appointment_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(f"{_APPOINTMENT_SELECT} WHERE a.appointment_id = $1", appointment_id)
        return _appointment_row(row) if row else None

    @retried_read
    async def case_appointment(self, case_id: UUID) -> dict[str, Any] | None:
        """The case's current appointment (after a cancellation and no new booking: the cancelled one)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"{_APPOINTMENT_SELECT} WHERE a.case_id = $1 ORDER BY a.confirmed_at DESC LIMIT 1", case_id)
        return _appointment_row(row) if row else None

    @retried_read
    async def case_of_appointment(self, appointment_id: UUID) -> UUID | None:
        async with self.pool.acquire() as conn:
            case_id: UUID | None = await conn.fetchval(
                "SELECT case_id FROM appointment_view WHERE appointment_id = $1", appointment_id)
        return case_id

    async def day(self, day: date, department: str | None, status: str | None) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""{_APPOINTMENT_SELECT} WHERE a.local_date = $1 AND ($2::text IS NULL OR a.department = $2)
                      AND ($3::text IS NULL OR a.status = $3)
                    ORDER BY a.starts_at, a.physician_id""", day, department, status)
        return [_appointment_row(row) for row in rows]
