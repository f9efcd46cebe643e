"""One handler per reporting command, and the reactions to other services' events. Every one locks the
case first (store.lock_case), then loads the report, lets the domain decide and appends, in one
transaction: the lock makes the order of writers about one case explicit, so the report stream never
sees a concurrent append and the close decision is taken once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from eventkit.aggregate import AggregateRepository
from eventkit.clock import tokyo_date
from eventkit.db import Conn
from eventkit.errors import NotFound
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.store import EventStore
from reporting import domain
from reporting.commands import (
    AmendReport,
    DraftReport,
    FinalizeReport,
    NoteConsultation,
    NotePayment,
    NoteRefund,
    RecordDelivery,
)
from reporting.store import (
    ReportingQueries,
    erase_report_texts,
    lock_case,
    report_repository,
    save_amendment,
    save_draft,
)
from secondopinion_contracts import EventData
from secondopinion_contracts.events.billing import PaymentCaptured, RefundIssued
from secondopinion_contracts.events.intake import PersonalDataErased
from secondopinion_contracts.events.reporting import ReportAmended, ReportDrafted
from secondopinion_contracts.events.scheduling import ConsultationCompleted

Decide = Callable[[domain.OpinionReport], list[Event]]


@dataclass
class ReportingHandlers:
    store: EventStore
    queries: ReportingQueries
    clock: Callable[[], datetime]

    def today(self) -> date:
        return tokyo_date(self.clock())

    @property
    def reports(self) -> AggregateRepository[domain.OpinionReport]:
        return report_repository(self.store)

    async def _execute(self, conn: Conn, case_id: UUID, decide: Decide, context: CommandContext) -> list[RecordedEvent]:
        await lock_case(conn, case_id)
        return await self.reports.execute(case_id, decide, context, conn=conn)

    async def _command(self, conn: Conn, case_id: UUID, decide: Decide,
                       context: CommandContext) -> list[RecordedEvent]:
        await lock_case(conn, case_id)
        report, _ = await self.reports.load(case_id, conn=conn)
        if not report.expected and not await self.queries.case_known(case_id, conn):
            raise NotFound(f"no case {case_id} is known to reporting")
        return await self.reports.execute(case_id, decide, context, conn=conn)

    # --- commands from the desk --------------------------------------------------------------------------

    async def draft_report(self, command: DraftReport, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            recorded = await self._command(conn, command.case_id, lambda r: domain.draft(command, r), context)
            drafted = next(r.data for r in recorded if isinstance(r.data, ReportDrafted))
            await save_draft(conn, command.case_id, drafted.draft_number, drafted.report_id, command.physician_id,
                             command.summary)
        return recorded

    async def finalize_report(self, command: FinalizeReport, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            return await self._command(conn, command.case_id, lambda r: domain.finalize(command, r, self.today()),
                                       context)

    async def amend_report(self, command: AmendReport, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            recorded = await self._command(conn, command.case_id, lambda r: domain.amend(command, r, self.today()),
                                           context)
            amended = next(r.data for r in recorded if isinstance(r.data, ReportAmended))
            await save_amendment(conn, command.case_id, amended, command.summary, command.note)
        return recorded

    async def record_delivery(self, command: RecordDelivery, context: CommandContext) -> list[RecordedEvent]:
        async with self.store.transaction() as conn:
            return await self._command(conn, command.case_id,
                                       lambda r: domain.record_delivery(command, r, self.today()), context)

    # --- reactions to other services' events (inside the consumer's inbox transaction) --------------------

    async def react(self, conn: Conn, data: EventData, context: CommandContext) -> list[RecordedEvent]:
        match data:
            case ConsultationCompleted():
                return await self.note_consultation_when_consultation_completed(conn, data, context)
            case PaymentCaptured():
                return await self.close_case_when_payment_captured(conn, data, context)
            case RefundIssued():
                return await self.note_refund_when_refund_issued(conn, data, context)
            case PersonalDataErased():
                await self.erase_report_text_when_personal_data_erased(conn, data)
        return []

    async def note_consultation_when_consultation_completed(self, conn: Conn, event: ConsultationCompleted,
                                                            context: CommandContext) -> list[RecordedEvent]:
        command = NoteConsultation(case_id=event.case_id, appointment_id=event.appointment_id, mode=event.mode,
                                   consulted_on=tokyo_date(event.completed_at))
        return await self._execute(conn, event.case_id, lambda r: domain.note_consultation(command, r), context)

    async def close_case_when_payment_captured(self, conn: Conn, event: PaymentCaptured,
                                               context: CommandContext) -> list[RecordedEvent]:
        command = NotePayment(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount)
        return await self._execute(conn, event.case_id, lambda r: domain.note_payment(command, r, self.today()),
                                   context)

    async def note_refund_when_refund_issued(self, conn: Conn, event: RefundIssued,
                                             context: CommandContext) -> list[RecordedEvent]:
        command = NoteRefund(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount,
                             fully_refunded=event.fully_refunded)
        return await self._execute(conn, event.case_id, lambda r: domain.note_refund(command, r), context)

    async def erase_report_text_when_personal_data_erased(self, conn: Conn, event: PersonalDataErased) -> None:
        # The opinion is about the patient: it goes with their personal data. Ids, codes and events stay.
        await erase_report_texts(conn, event.case_id, event.erased_on)
