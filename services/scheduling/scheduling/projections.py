"""Scheduling's read models, kept in the transaction of the events they reflect: slot_view (one row per slot),
case_schedule_view (one per case) and appointment_view (one per appointment)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.clock import tokyo_date
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.read_models import RowChanges, apply_to_rows
from scheduling.events import (
    CaseWithdrawalRecorded,
    FeePaymentRecorded,
    SchedulingStarted,
    SlotBooked,
    SlotFreed,
    SlotHeld,
    SlotHoldReleased,
    SlotOpened,
)
from scheduling.repository import CASE_STREAM, SLOT_STREAM
from secondopinion_contracts.events import scheduling as published


class SlotViewProjection:
    """One row per slot: when, whose, and whether it is open, held for a case, or booked."""

    name = "slot_view"
    tables = ("slot_view",)

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        for event in recorded:
            if event.stream_type == SLOT_STREAM:
                await self._apply_one(conn, event)

    async def _apply_one(self, conn: Conn, event: RecordedEvent) -> None:
        data = event.data
        if isinstance(data, SlotOpened):
            await conn.execute(
                """INSERT INTO slot_view (slot_id, department, physician_id, starts_at, ends_at, local_date, status,
                                          version, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) ON CONFLICT (slot_id) DO NOTHING""",
                data.slot_id, data.department, data.physician_id, data.start, data.end, tokyo_date(data.start),
                event.version, event.recorded_at)
            return
        if not isinstance(data, SlotHeld | SlotHoldReleased | SlotBooked | SlotFreed):
            return
        # Claims the event's version for the row first: nothing back means it was applied already (rebuild and live
        # apply are idempotent per stream version).
        claimed = await conn.fetchval(
            "UPDATE slot_view SET version = $2, updated_at = $3 WHERE slot_id = $1 AND version < $2 RETURNING true",
            data.slot_id, event.version, event.recorded_at)
        if not claimed:
            return
        match data:
            case SlotHeld():
                await conn.execute(
                    "UPDATE slot_view SET status = 'held', held_for_case = $2, hold_expires_at = $3 WHERE slot_id = $1",
                    data.slot_id, data.case_id, data.hold_expires_at)
            case SlotHoldReleased():
                await conn.execute(
                    """UPDATE slot_view SET status = 'open', held_for_case = NULL, hold_expires_at = NULL
                       WHERE slot_id = $1 AND status = 'held' AND held_for_case = $2""",
                    data.slot_id, data.case_id)
            case SlotBooked():
                await conn.execute(
                    """UPDATE slot_view SET status = 'booked', held_for_case = NULL, hold_expires_at = NULL,
                                            booked_for_case = $2, appointment_id = $3 WHERE slot_id = $1""",
                    data.slot_id, data.case_id, data.appointment_id)
            case SlotFreed():
                await conn.execute(
                    """UPDATE slot_view SET status = 'open', booked_for_case = NULL, appointment_id = NULL
                       WHERE slot_id = $1""", data.slot_id)


_UPSERT_CASES = """
    INSERT INTO case_schedule_view (case_id, status, department, mode, candidates, hold_expires_at, appointment_id,
                                    fee_paid, version, updated_at)
    SELECT id, st, d, m, c::jsonb, h, a, f, v, ua
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::uuid[], $8::bool[],
                $9::int[], $10::timestamptz[]) AS u(id, st, d, m, c, h, a, f, v, ua)
    ORDER BY id
    ON CONFLICT (case_id) DO UPDATE SET
        status = EXCLUDED.status, department = EXCLUDED.department, mode = EXCLUDED.mode,
        candidates = EXCLUDED.candidates, hold_expires_at = EXCLUDED.hold_expires_at,
        appointment_id = EXCLUDED.appointment_id, fee_paid = EXCLUDED.fee_paid, version = EXCLUDED.version,
        updated_at = EXCLUDED.updated_at
    WHERE $11
    RETURNING case_id"""

_CASE_COLUMNS = ("case_id", "status", "department", "mode", "candidates", "hold_expires_at", "appointment_id",
                 "fee_paid", "version", "updated_at")


class CaseScheduleProjection:
    """Per case: status, candidates, current appointment and fee; per appointment: its whole course."""

    name = "case_schedule_view"
    tables = ("case_schedule_view", "appointment_view")

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        # Each case's row folded in Python from its events, all of a batch's rows written in one statement.
        streams: dict[UUID, list[RecordedEvent]] = {}
        for event in recorded:
            if event.stream_type == CASE_STREAM:
                case_id: UUID = getattr(event.data, "case_id")  # noqa: B009 (every event of the stream carries it)
                streams.setdefault(case_id, []).append(event)
        if streams:
            await apply_to_rows(conn, streams, read=_read_cases, key=lambda row: row["case_id"], write=self._write)

    async def _write(self, conn: Conn, changes: RowChanges[UUID], only_if_new: bool) -> set[UUID]:
        """Each case's row (None: a new case) with its new events applied, then their appointments; the cases
        written. With `only_if_new` a case whose row exists is not written."""
        columns: list[list[Any]] = [[] for _ in _CASE_COLUMNS]
        for case_id, known, new in changes:
            row: dict[str, Any] = (dict(known) if known is not None else
                                   {"case_id": case_id, "status": "new", "department": None, "mode": None,
                                    "candidates": "[]", "hold_expires_at": None, "appointment_id": None,
                                    "fee_paid": False})
            for event in new:
                _fold_case(row, event.data)
            row["version"], row["updated_at"] = new[-1].version, new[-1].recorded_at
            for column, name in zip(columns, _CASE_COLUMNS, strict=True):
                column.append(row[name])
        written = {row["case_id"] for row in await conn.fetch(_UPSERT_CASES, *columns, not only_if_new)}
        for case_id, _, new in changes:
            if case_id in written:
                for event in new:
                    await self._apply_appointment(conn, case_id, event)
        return written

    async def _apply_appointment(self, conn: Conn, case_id: UUID, event: RecordedEvent) -> None:
        data = event.data
        at = event.recorded_at
        match data:
            case published.SlotConfirmed():
                await conn.execute(
                    """INSERT INTO appointment_view (appointment_id, case_id, status, mode, department, physician_id,
                                                     slot_id, starts_at, ends_at, local_date, confirmed_at, updated_at)
                       VALUES ($1, $2, 'booked', $3, $4, $5, $6, $7, $8, $9, $10, $10)
                       ON CONFLICT (appointment_id) DO NOTHING""",
                    data.appointment_id, case_id, data.mode.value, data.department, data.physician_id, data.slot_id,
                    data.start, data.end, tokyo_date(data.start), at)
            case published.AppointmentSlipIssued():
                await self._update_appointment(conn, data.appointment_id, at, "slip_issued_on = $3", data.issued_on)
            case published.OnlineBookingRegistered():
                await self._update_appointment(conn, data.appointment_id, at, "clinics_booking_ref = $3",
                                               data.clinics_booking_ref)
            case published.AppointmentRescheduled():
                entry = json.dumps([{"from_slot_id": str(data.previous_slot_id), "to_slot_id": str(data.slot_id),
                                     "reason": data.reason.value, "at": at.isoformat()}])
                await self._update_appointment(
                    conn, data.appointment_id, at,
                    """slot_id = $3, starts_at = $4, ends_at = $5, local_date = $6, physician_id = $7,
                       slip_issued_on = NULL, clinics_booking_ref = NULL, reschedules = reschedules || $8::jsonb""",
                    data.slot_id, data.start, data.end, tokyo_date(data.start), data.physician_id, entry)
            case published.AppointmentCancelled():
                await self._update_appointment(
                    conn, data.appointment_id, at,
                    "status = 'cancelled', cancellation_reason = $3, cancelled_by = $4, cancelled_at = $2",
                    data.reason.value, data.cancelled_by.value)
            case published.ConsultationCompleted():
                await self._update_appointment(conn, data.appointment_id, at,
                                               "status = 'completed', completed_at = $3", data.completed_at)
            case published.PatientNoShow():
                await self._update_appointment(conn, data.appointment_id, at,
                                               "status = 'no_show', no_show_recorded_at = $3", data.recorded_at)

    async def _update_appointment(self, conn: Conn, appointment_id: UUID, at: datetime, assignments: str,
                                  *values: Any) -> None:
        await conn.execute(f"UPDATE appointment_view SET {assignments}, updated_at = $2 WHERE appointment_id = $1",
                           appointment_id, at, *values)


async def _read_cases(conn: Conn, case_ids: list[UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM case_schedule_view WHERE case_id = ANY($1::uuid[]) ORDER BY case_id FOR UPDATE", case_ids)
    return rows


def _fold_case(row: dict[str, Any], data: object) -> None:
    """A case's view row after one more event of its stream."""
    match data:
        case SchedulingStarted():
            if row["status"] == "new":
                row["status"] = "awaiting_proposals"
            row["department"], row["mode"] = data.department, data.mode.value
        case FeePaymentRecorded():
            if data.appointment_id is None or row["appointment_id"] in (None, data.appointment_id):
                row["fee_paid"] = True
        case CaseWithdrawalRecorded():
            row.update(status="withdrawn", candidates="[]", hold_expires_at=None)
        case published.SlotsProposed():
            row.update(status="proposed", hold_expires_at=data.hold_expires_at,
                       candidates=json.dumps([candidate.model_dump(mode="json") for candidate in data.candidates]))
        case published.SlotConfirmed():
            row.update(status="booked", candidates="[]", hold_expires_at=None, appointment_id=data.appointment_id)
        case published.AppointmentCancelled():
            row.update(status="cancelled", fee_paid=False)
        case published.ConsultationCompleted():
            row["status"] = "completed"
        case published.PatientNoShow():
            row["status"] = "no_show"


PROJECTIONS = (SlotViewProjection(), CaseScheduleProjection())
