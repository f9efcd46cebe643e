"""One handler per intake command: load the case, let the domain decide, append (with the sealed personal data).

Each is `(command, context)` plus what bootstrap binds to it; the table of command -> handler is at the bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from eventkit.clock import tokyo_date
from eventkit.crypto import to_text
from eventkit.errors import NotFound
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import EventStore
from intake import domain
from intake.commands import ErasePersonalData, ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from intake.repository import CASE_KEYS, case_repository, save_personal_data


async def submit_case(command: SubmitCase, context: CommandContext, *, store: EventStore,
                      departments: frozenset[str]) -> list[RecordedEvent]:
    async with store.transaction() as conn:
        payer = await CASE_KEYS.seal(conn, command.case_id, {"payer_name": command.requester.name})
        sealed_command = replace(command, payer_name_sealed=to_text(payer))
        recorded = await case_repository(store).execute(
            command.case_id, lambda case: domain.submit(sealed_command, case, departments), context, conn=conn)
        await save_personal_data(conn, command)
    return recorded


async def receive_document(command: ReceiveDocument, context: CommandContext, *,
                           store: EventStore) -> list[RecordedEvent]:
    return await case_repository(store).execute(
        command.case_id, _existing(lambda case: domain.receive_document(command, case)), context)


async def screen_case(command: ScreenCase, context: CommandContext, *, store: EventStore,
                      departments: frozenset[str]) -> list[RecordedEvent]:
    return await case_repository(store).execute(
        command.case_id, _existing(lambda case: domain.screen(command, case, departments)), context)


async def withdraw_case(command: WithdrawCase, context: CommandContext, *, store: EventStore) -> list[RecordedEvent]:
    return await case_repository(store).execute(
        command.case_id, _existing(lambda case: domain.withdraw(command, case)), context)


async def erase_personal_data(command: ErasePersonalData, context: CommandContext, *, store: EventStore,
                              retention_years: int, clock: Callable[[], datetime]) -> list[RecordedEvent]:
    """Record the erasure and destroy the case's key in one transaction: both happen or neither."""
    cases = case_repository(store)
    async with store.transaction() as conn:
        history = await store.load(cases.stream_id(command.case_id), conn=conn)
        if not history:
            raise NotFound("no such case")
        last_activity_on = tokyo_date(history[-1].recorded_at)
        recorded = await cases.execute(
            command.case_id, lambda case: domain.erase_personal_data(
                command, case, last_activity_on=last_activity_on, retention_years=retention_years),
            context, conn=conn)
        await CASE_KEYS.erase(conn, command.case_id, context.actor.id, clock())
    return recorded


def _existing(decide: Callable[[domain.Case], list[Event]]) -> Callable[[domain.Case], list[Event]]:
    def checked(case: domain.Case) -> list[Event]:
        if case.status is domain.CaseStatus.NEW:
            raise NotFound("no such case")
        return decide(case)

    return checked


HANDLERS: dict[type, Callable[..., Any]] = {
    SubmitCase: submit_case,
    ReceiveDocument: receive_document,
    ScreenCase: screen_case,
    WithdrawCase: withdraw_case,
    ErasePersonalData: erase_personal_data,
}
