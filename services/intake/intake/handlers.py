"""One handler per intake command: load the case, let the domain decide, append (with side data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from uuid import UUID

from eventkit.aggregate import AggregateRepository
from eventkit.clock import tokyo_date
from eventkit.crypto import to_text
from eventkit.errors import NotFound
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import EventStore
from intake import domain
from intake.commands import ErasePersonalData, ReceiveDocument, ScreenCase, SubmitCase, WithdrawCase
from intake.store import CASE_KEYS, case_repository, save_personal_data


@dataclass
class IntakeHandlers:
    store: EventStore
    departments: frozenset[str]
    clock: Callable[[], datetime]
    retention_years: int = 5

    def today(self) -> date:
        return tokyo_date(self.clock())

    @property
    def cases(self) -> AggregateRepository[domain.Case]:
        return case_repository(self.store)

    async def submit_case(self, command: SubmitCase, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            payer = await CASE_KEYS.seal(conn, command.case_id, {"payer_name": command.requester.name})
            sealed_command = replace(command, payer_name_sealed=to_text(payer))
            recorded = await self.cases.execute(
                command.case_id, lambda case: domain.submit(sealed_command, case, self.departments), context,
                conn=conn)
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

    async def erase_personal_data(self, case_id: UUID, context: CommandContext) -> list[RecordedEvent]:
        """Record the erasure and destroy the case's key in one transaction: both happen or neither."""
        async with self.store.transaction() as conn:
            history = await self.store.load(self.cases.stream_id(case_id), conn=conn)
            if not history:
                raise NotFound("no such case")
            command = ErasePersonalData(case_id=case_id, requested_on=self.today(),
                                        last_activity_on=tokyo_date(history[-1].recorded_at),
                                        retention_years=self.retention_years)
            recorded = await self.cases.execute(
                case_id, lambda case: domain.erase_personal_data(command, case), context, conn=conn)
            await CASE_KEYS.erase(conn, case_id, context.actor.id, self.clock())
        return recorded


def _existing(decide: Callable[[domain.Case], list[Event]]) -> Callable[[domain.Case], list[Event]]:
    def checked(case: domain.Case) -> list[Event]:
        if case.status is domain.CaseStatus.NEW:
            raise NotFound("no such case")
        return decide(case)

    return checked
