"""One handler per intake command: load the case, let the domain decide, append (with the sealed personal data).

Each is `(command, uow)` plus what bootstrap binds to it; the table of command -> handler is at the bottom. The case's
personal data and keys, kept beside its events, go through `personal_data` (repository.PersonalData); erasures
waiting for a second privacy officer through `erasure_requests` (repository.ErasureRequests); the case numbers through
`case_numbers` (repository.CaseNumbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any
from uuid import UUID

from eventkit.clock import Clock, tokyo_date
from eventkit.errors import CommandRejected, NotFound
from eventkit.events import Event, RecordedEvent
from eventkit.unit_of_work import Loaded, UnitOfWork
from intake import domain
from intake.commands import (
    ApproveErasure,
    CorrectCaseDetails,
    ErasePersonalData,
    ReceiveDocument,
    RecordContact,
    RequestErasure,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from intake.repository import CASES, CaseNumbers, ErasureRequests, PersonalData
from secondopinion_contracts.events.intake import CaseSubmitted


async def submit_case(command: SubmitCase, uow: UnitOfWork, *, departments: frozenset[str],
                      personal_data: PersonalData, case_numbers: CaseNumbers) -> list[RecordedEvent]:
    """The submission, its sealed personal data and its case number, in one transaction. The number is taken once
    the domain has accepted the submission (a refused one takes none), just before the commit, so its year's counter
    stays locked as briefly as it can; CaseSubmitted carries it."""
    payer_name_sealed = await personal_data.keep(uow, command)
    case = await uow.load(CASES, command.case_id)
    decided = domain.submit(replace(command, payer_name_sealed=payer_name_sealed), case.state, departments)
    number = await case_numbers.assign(uow, command.case_id, command.submitted_on)
    uow.save(case, [event.model_copy(update={"case_number": number}) if isinstance(event, CaseSubmitted) else event
                    for event in decided])
    return await uow.commit()


async def receive_document(command: ReceiveDocument, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, _existing(lambda case: domain.receive_document(command, case)))


async def screen_case(command: ScreenCase, uow: UnitOfWork, *, departments: frozenset[str]) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id,
                             _existing(lambda case: domain.screen(command, case, departments)))


async def withdraw_case(command: WithdrawCase, uow: UnitOfWork) -> list[RecordedEvent]:
    return await uow.execute(CASES, command.case_id, _existing(lambda case: domain.withdraw(command, case)))


async def correct_case_details(command: CorrectCaseDetails, uow: UnitOfWork, *,
                               personal_data: PersonalData) -> list[RecordedEvent]:
    """The domain decides on the details that really change; the corrected values are sealed in the same
    transaction as the events (a refused correction changes nothing)."""
    case = await uow.load(CASES, command.case_id)
    if case.state.status is domain.CaseStatus.NEW:
        raise NotFound("no such case")
    corrections = domain.personal_corrections(command)
    changed = await personal_data.changed(uow, command.case_id, corrections)
    uow.save(case, domain.correct(command, case.state, changed))
    await personal_data.correct(uow, command, {name: corrections[name] for name in changed})
    return await uow.commit()


async def record_contact(command: RecordContact, uow: UnitOfWork, *,
                         personal_data: PersonalData) -> list[RecordedEvent]:
    """The contact's facts as an event, its note sealed beside the stream, in one transaction."""
    case = await uow.load(CASES, command.case_id)
    if case.state.status is domain.CaseStatus.NEW:
        raise NotFound("no such case")
    uow.save(case, domain.record_contact(command, case.state))
    await personal_data.keep_contact(uow, command)
    return await uow.commit()


async def erase_personal_data(command: ErasePersonalData, uow: UnitOfWork, *, retention_years: int, clock: Clock,
                              personal_data: PersonalData) -> list[RecordedEvent]:
    """Record the erasure and destroy the case's key in one transaction: both happen or neither."""
    case, events = await _erasure(uow, command.case_id, command.requested_on, retention_years)
    uow.save(case, events)
    await personal_data.erase(uow, command.case_id, uow.context.actor.id, clock())
    return await uow.commit()


async def request_erasure(command: RequestErasure, uow: UnitOfWork, *, retention_years: int,
                          erasure_requests: ErasureRequests) -> list[RecordedEvent]:
    """The first privacy officer: refused as the erasure itself would be (retention period, erased already), else
    kept waiting for a second one. No event: nothing has happened to the case yet."""
    await _erasure(uow, command.case_id, command.requested_on, retention_years)
    if not await erasure_requests.add(uow, command.case_id, uow.context.actor.id, command.requested_on):
        raise CommandRejected("an erasure of this case is already waiting for approval", code="already_requested")
    return await uow.commit()


async def approve_erasure(command: ApproveErasure, uow: UnitOfWork, *, retention_years: int, clock: Clock,
                          personal_data: PersonalData, erasure_requests: ErasureRequests) -> list[RecordedEvent]:
    """A second privacy officer: the request is taken and the case erased in one transaction, both or neither."""
    requested_by = await erasure_requests.requester(uow, command.case_id)
    if requested_by is None:
        raise CommandRejected("no erasure of this case was requested: a privacy officer requests it first",
                              code="not_requested")
    if requested_by == uow.context.actor.id:
        raise CommandRejected("a second privacy officer must approve the erasure you requested", code="own_request")
    await erasure_requests.remove(uow, command.case_id)
    return await erase_personal_data(ErasePersonalData(case_id=command.case_id, requested_on=command.approved_on),
                                     uow, retention_years=retention_years, clock=clock, personal_data=personal_data)


async def _erasure(uow: UnitOfWork, case_id: UUID, on: date,
                   retention_years: int) -> tuple[Loaded[domain.Case], list[Event]]:
    """The case and its erasure as the domain decides it on `on` (raising when it may not be erased)."""
    stream_id = CASES.stream_id(case_id)
    history = await uow.load_stream(stream_id)
    if not history:
        raise NotFound("no such case")
    case = Loaded(stream_id, CASES.stream_type, CASES.fold(history), history[-1].version)
    events = domain.erase_personal_data(ErasePersonalData(case_id=case_id, requested_on=on), case.state,
                                        last_activity_on=tokyo_date(history[-1].recorded_at),
                                        retention_years=retention_years)
    return case, events


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
    CorrectCaseDetails: correct_case_details,
    RecordContact: record_contact,
    ErasePersonalData: erase_personal_data,
    RequestErasure: request_erasure,
    ApproveErasure: approve_erasure,
}
