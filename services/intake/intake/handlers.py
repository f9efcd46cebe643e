"""One handler per intake command: load the case, let the domain decide, append (with the sealed personal data).

Each is `(command, uow)` plus what bootstrap binds to it; the table of command -> handler is at the bottom. The case's
personal data and keys, kept beside its events, go through `personal_data` (repository.PersonalData).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from eventkit.clock import Clock, tokyo_date
from eventkit.errors import NotFound
from eventkit.events import Event, RecordedEvent
from eventkit.unit_of_work import Loaded, UnitOfWork
from intake import domain
from intake.commands import ErasePersonalData, ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from intake.repository import CASES, PersonalData


async def submit_case(command: SubmitCase, uow: UnitOfWork, *, departments: frozenset[str],
                      personal_data: PersonalData) -> list[RecordedEvent]:
    payer_name_sealed = await personal_data.keep(uow, command)
    case = await uow.load(CASES, command.case_id)
    uow.save(case, domain.submit(replace(command, payer_name_sealed=payer_name_sealed), case.state, departments))
    return await uow.commit()


async def receive_document(command: ReceiveDocument, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, _existing(lambda case: domain.receive_document(command, case)))


async def screen_case(command: ScreenCase, uow: UnitOfWork, *, departments: frozenset[str]) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id,
                             _existing(lambda case: domain.screen(command, case, departments)))


async def withdraw_case(command: WithdrawCase, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, _existing(lambda case: domain.withdraw(command, case)))


async def erase_personal_data(command: ErasePersonalData, uow: UnitOfWork, *, retention_years: int, clock: Clock,
                              personal_data: PersonalData) -> list[RecordedEvent]:
    """Record the erasure and destroy the case's key in one transaction: both happen or neither."""
    stream_id = CASES.stream_id(command.case_id)
    history = await uow.load_stream(stream_id)
    if not history:
        raise NotFound("no such case")
    case = Loaded(stream_id, CASES.stream_type, CASES.fold(history), history[-1].version)
    uow.save(case, domain.erase_personal_data(command, case.state, last_activity_on=tokyo_date(history[-1].recorded_at),
                                              retention_years=retention_years))
    await personal_data.erase(uow, command.case_id, uow.context.actor.id, clock())
    return await uow.commit()


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
