"""Erasure by two people: a privacy officer requests it, a second privacy officer approves it, and only then is
the case's key destroyed (intake.handlers.erase_personal_data). The request is a pending row beside the case's
stream (table `erasure_requests`); it is checked against the retention period when made and again when approved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventkit.clock import Clock, tokyo_date
from eventkit.errors import CommandRejected, NotFound
from eventkit.events import RecordedEvent
from eventkit.unit_of_work import PostgresUnitOfWork
from intake import domain
from intake.commands import ErasePersonalData
from intake.handlers import erase_personal_data
from intake.repository import CASES


@dataclass(frozen=True)
class RequestErasure:
    case_id: UUID
    requested_on: date


@dataclass(frozen=True)
class ApproveErasure:
    case_id: UUID
    approved_on: date


async def check_erasable(uow: PostgresUnitOfWork, case_id: UUID, on: date, retention_years: int) -> None:
    """Raises as the erasure itself would (no such case, already erased, retention period not over)."""
    history = await uow.load_stream(CASES.stream_id(case_id))
    if not history:
        raise NotFound("no such case")
    domain.erase_personal_data(ErasePersonalData(case_id=case_id, requested_on=on), CASES.fold(history),
                               last_activity_on=tokyo_date(history[-1].recorded_at), retention_years=retention_years)


async def request_erasure(command: RequestErasure, uow: PostgresUnitOfWork, *,
                          retention_years: int) -> list[RecordedEvent]:
    await check_erasable(uow, command.case_id, command.requested_on, retention_years)
    conn = await uow.connection()
    inserted = await conn.fetchval(
        """INSERT INTO erasure_requests (case_id, requested_by, requested_on) VALUES ($1, $2, $3)
           ON CONFLICT (case_id) DO NOTHING RETURNING case_id""",
        command.case_id, uow.context.actor.id, command.requested_on)
    if inserted is None:
        raise CommandRejected("an erasure of this case is already waiting for approval", code="already_requested")
    return await uow.commit()


async def take_request(uow: PostgresUnitOfWork, case_id: UUID) -> str:
    """The pending request's requester, removing the request: 409 when there is none or it is the approver's own."""
    conn = await uow.connection()
    requested_by: str | None = await conn.fetchval(
        "SELECT requested_by FROM erasure_requests WHERE case_id = $1 FOR UPDATE", case_id)
    if requested_by is None:
        raise CommandRejected("no erasure of this case was requested: a privacy officer requests it first",
                              code="not_requested")
    if requested_by == uow.context.actor.id:
        raise CommandRejected("a second privacy officer must approve the erasure you requested",
                              code="own_request")
    await conn.execute("DELETE FROM erasure_requests WHERE case_id = $1", case_id)
    return requested_by


async def approve_erasure(command: ApproveErasure, uow: PostgresUnitOfWork, *, retention_years: int,
                          clock: Clock) -> list[RecordedEvent]:
    """Erase now, in the same transaction that consumes the other officer's request: both happen or neither."""
    await take_request(uow, command.case_id)
    return await erase_personal_data(ErasePersonalData(case_id=command.case_id, requested_on=command.approved_on),
                                     uow, retention_years=retention_years, clock=clock)


ERASURE_HANDLERS: dict[type, Callable[..., Any]] = {
    RequestErasure: request_erasure,
    ApproveErasure: approve_erasure,
}
