"""One handler per reporting command, the desk's and those other services' events become (consumers.py): each
`(command, uow)` plus what bootstrap binds to it, with the table of command -> handler at the bottom.

Every one locks the case first (repository.lock_case), then loads the report, lets the domain decide and appends, in
one transaction: the lock makes the order of writers about one case explicit, so the report stream never sees a
concurrent append and the close decision is taken once. What they keep beside the stream goes through `files`
(repository.CaseFiles, bound by bootstrap; a fake in handler tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventkit.clock import Clock, tokyo_date
from eventkit.errors import NotFound
from eventkit.events import Event, RecordedEvent
from eventkit.unit_of_work import Loaded, UnitOfWork
from reporting import domain
from reporting.commands import (
    DraftReport,
    EraseReportTexts,
    FinalizeReport,
    NoteConsultation,
    NotePayment,
    NoteRefund,
    RecordDelivery,
)
from reporting.repository import REPORTS, CaseFiles
from secondopinion_contracts.events.reporting import ReportDrafted

Decide = Callable[[domain.OpinionReport], list[Event]]


async def _locked_report(uow: UnitOfWork, files: CaseFiles, case_id: UUID, *,
                         known_case: bool) -> Loaded[domain.OpinionReport]:
    """The case's lock taken, then its report loaded. `known_case`: refuse a case reporting never heard of (the
    desk's commands; a fact from another service always belongs to a known case)."""
    await files.lock(uow, case_id)
    report = await uow.load(REPORTS, case_id)
    if known_case and not report.state.expected and not await files.known(uow, case_id):
        raise NotFound(f"no case {case_id} is known to reporting")
    return report


async def _decide(uow: UnitOfWork, files: CaseFiles, case_id: UUID, decide: Decide, *,
                  known_case: bool = False) -> list[RecordedEvent]:
    report = await _locked_report(uow, files, case_id, known_case=known_case)
    uow.save(report, decide(report.state))
    return await uow.commit()


# --- the desk's commands -----------------------------------------------------------------------------------------

async def draft_report(command: DraftReport, uow: UnitOfWork, *, files: CaseFiles) -> list[RecordedEvent]:
    report = await _locked_report(uow, files, command.case_id, known_case=True)
    events = domain.draft(command, report.state)
    drafted = next(event for event in events if isinstance(event, ReportDrafted))
    await files.save_draft(uow, command.case_id, drafted.draft_number, drafted.report_id, command.physician_id,
                           command.summary)
    uow.save(report, events)
    return await uow.commit()


async def finalize_report(command: FinalizeReport, uow: UnitOfWork, *, files: CaseFiles,
                          clock: Clock) -> list[RecordedEvent]:
    return await _decide(uow, files, command.case_id,
                         lambda report: domain.finalize(command, report, tokyo_date(clock())), known_case=True)


async def record_delivery(command: RecordDelivery, uow: UnitOfWork, *, files: CaseFiles,
                          clock: Clock) -> list[RecordedEvent]:
    return await _decide(uow, files, command.case_id,
                         lambda report: domain.record_delivery(command, report, tokyo_date(clock())), known_case=True)


# --- what other services' events become (consumers.py) -----------------------------------------------------------

async def note_consultation_when_consultation_completed(command: NoteConsultation, uow: UnitOfWork, *,
                                                        files: CaseFiles) -> list[RecordedEvent]:
    return await _decide(uow, files, command.case_id, lambda report: domain.note_consultation(command, report))


async def close_case_when_payment_captured(command: NotePayment, uow: UnitOfWork, *, files: CaseFiles,
                                           clock: Clock) -> list[RecordedEvent]:
    return await _decide(uow, files, command.case_id,
                         lambda report: domain.note_payment(command, report, tokyo_date(clock())))


async def note_refund_when_refund_issued(command: NoteRefund, uow: UnitOfWork, *,
                                         files: CaseFiles) -> list[RecordedEvent]:
    return await _decide(uow, files, command.case_id, lambda report: domain.note_refund(command, report))


async def erase_report_text_when_personal_data_erased(command: EraseReportTexts, uow: UnitOfWork, *,
                                                      files: CaseFiles) -> None:
    # The opinion is about the patient: it goes with their personal data. Ids, codes and events stay.
    await files.erase_texts(uow, command.case_id, command.erased_on)


HANDLERS: dict[type, Callable[..., Any]] = {
    DraftReport: draft_report,
    FinalizeReport: finalize_report,
    RecordDelivery: record_delivery,
    NoteConsultation: note_consultation_when_consultation_completed,
    NotePayment: close_case_when_payment_captured,
    NoteRefund: note_refund_when_refund_issued,
    EraseReportTexts: erase_report_text_when_personal_data_erased,
}
