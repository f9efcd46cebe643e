"""One handler per intake command: load the case, let the domain decide, append (with side data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from eventkit.aggregate import AggregateRepository
from eventkit.clock import tokyo_date
from eventkit.errors import NotFound
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import EventStore

from intake import domain
from intake.commands import ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from intake.store import case_repository, save_personal_data


@dataclass
class IntakeHandlers:
    store: EventStore
    departments: frozenset[str]
    clock: Callable[[], datetime]

    def today(self) -> date:
        return tokyo_date(self.clock())

    @property
    def cases(self) -> AggregateRepository[domain.Case]:
        return case_repository(self.store)

    async def submit_case(self, command: SubmitCase, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            recorded = await self.cases.execute(
                command.case_id, lambda case: domain.submit(command, case, self.departments), context, conn=conn)
            await save_personal_data(conn, command)
        return recorded

    async def receive_document(self, command: ReceiveDocument, context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, _existing(lambda case: domain.receive_document(command, case)),
                                        context)

    async def screen_case(self, command: ScreenCase, context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(
            command.case_id, _existing(lambda case: domain.screen(command, case, self.departments)), context)

    async def withdraw_case(self, command: WithdrawCase, context: CommandContext) -> list[RecordedEvent]:
        return await self.cases.execute(command.case_id, _existing(lambda case: domain.withdraw(command, case)),
                                        context)


def _existing(decide: Callable[[domain.Case], list[Event]]) -> Callable[[domain.Case], list[Event]]:
    def checked(case: domain.Case) -> list[Event]:
        if case.status is domain.CaseStatus.NEW:
            raise NotFound("no such case")
        return decide(case)

    return checked
