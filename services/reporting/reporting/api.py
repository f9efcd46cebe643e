"""Reporting's HTTP API: the opinion report (draft, finalize, delivery), and the read side for the desk:
case timelines, the case board and KPIs (the desk console shows them)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from eventkit.audit import record_access
from eventkit.auth import allow, allow_staff
from eventkit.bootstrap import Dispatcher
from eventkit.documents import PDF_MEDIA_TYPE, HospitalSettings, issued_pdf
from eventkit.errors import InvalidCommand, NotFound
from eventkit.events import Actor, RecordedEvent
from eventkit.http import command_context, from_app_state, on_pool
from eventkit.input_policy import DeskDate, Prose, RequestModel
from eventkit.runtime import ServiceRuntime
from eventkit.service_identity import IntakeDisclosure
from eventkit.staff import StaffMember
from reporting import domain
from reporting.commands import AmendReport, DraftReport, FinalizeReport, RecordDelivery
from reporting.letter import LetterFacts, render_letter
from reporting.queries import ReportingQueries
from reporting.repository import REPORTS
from secondopinion_contracts.codes import AmendmentReason, DeliveryChannel
from secondopinion_contracts.departments import DepartmentCode

router = APIRouter()

# Who does what: the physician writes the report, the desk records its delivery; the
# read side serves the desk, the physicians and the auditors (it holds ids and codes, no personal data).
Physician = Annotated[StaffMember, Depends(allow_staff("physician"))]
Coordinator = Annotated[Actor, Depends(allow("coordinator"))]
ReportReader = Annotated[Actor, Depends(allow("physician", "coordinator"))]
TextReader = Annotated[Actor, Depends(allow("physician"))]
DeskReader = Annotated[Actor, Depends(allow("coordinator", "physician", "auditor"))]

StaffId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]


class Strict(RequestModel):
    pass


class DraftIn(Strict):
    physician: StaffId | None = Field(None, description=(
        "Taken from the sign-in; if given (older clients) it must be the signed-in physician's staff id."))
    # No NUL characters: PostgreSQL text cannot hold them.
    summary: Annotated[str, Field(min_length=1, max_length=20_000, pattern=r"^[^\x00]*$",
                                  description="The opinion for the attending physician (kept in reporting only)."),
                       Prose]


class AmendmentIn(Strict):
    physician: StaffId | None = Field(None, description=(
        "Taken from the sign-in; if given (older clients) it must be the signed-in physician's staff id."))
    summary: Annotated[str, Field(min_length=1, max_length=20_000, pattern=r"^[^\x00]*$",
                                  description="The amended opinion in full (the earlier version stays readable).")]
    reason: AmendmentReason
    note: Annotated[str, Field(min_length=1, max_length=2_000, pattern=r"^[^\x00]*$",
                               description="Why, in the physician's words (kept in reporting only).")]


class DeliveryIn(Strict):
    channel: DeliveryChannel


class ReportResult(BaseModel):
    case_id: UUID
    report_id: UUID | None
    status: str
    draft_number: int
    report_version: int = Field(0, description="0 while drafted, 1 once final, 2 and on once amended.")
    case_closed: bool
    events: list[str]


Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
Queries = Annotated[ReportingQueries, Depends(on_pool(ReportingQueries))]
Runtime = Annotated[ServiceRuntime, Depends(from_app_state("runtime", ServiceRuntime))]
PersonalData = Annotated[IntakeDisclosure, Depends(from_app_state("personal_data", IntakeDisclosure))]
Hospital = Annotated[HospitalSettings, Depends(from_app_state("hospital", HospitalSettings))]


async def _report(runtime: ServiceRuntime, case_id: UUID) -> tuple[domain.OpinionReport, int]:
    """The case's report as its stream has it now, and the stream's version."""
    events = await runtime.store.load(REPORTS.stream_id(case_id))
    return REPORTS.fold(events), events[-1].version if events else 0


async def _result(runtime: ServiceRuntime, case_id: UUID, recorded: list[RecordedEvent]) -> ReportResult:
    report, _ = await _report(runtime, case_id)
    return ReportResult(case_id=case_id, report_id=report.report_id, status=report.status.value,
                        draft_number=report.draft_number, report_version=report.version,
                        case_closed=report.closed, events=[event.name for event in recorded])


async def _require_department(physician: StaffMember, case_id: UUID, q: ReportingQueries) -> None:
    """403 for a case of another department; a case reporting never heard of is the handler's 404."""
    case = await q.case(case_id)
    if case is not None:
        physician.require_department(case["department"])


# --- the opinion report --------------------------------------------------------------------------------------

@router.post("/cases/{case_id}/report", status_code=201, response_model=ReportResult, tags=["report"])
async def draft_report(case_id: UUID, body: DraftIn, actor: Physician, handle: Handle, runtime: Runtime,
                       q: Queries) -> ReportResult:
    """Draft (or redraft) the opinion report; allowed once the consultation was completed, until it is final.
    The signed-in physician writes it, on a case of their own department."""
    actor.require_named(body.physician, "physician")
    await _require_department(actor, case_id, q)
    command = DraftReport(case_id=case_id, report_id=uuid4(), physician_id=actor.staff_id, summary=body.summary)
    recorded = await handle(command, command_context(actor.actor, case_id, "DraftReport"))
    return await _result(runtime, case_id, recorded)


@router.post("/cases/{case_id}/report/finalize", response_model=ReportResult, tags=["report"])
async def finalize_report(case_id: UUID, actor: Physician, handle: Handle, runtime: Runtime,
                          q: Queries) -> ReportResult:
    await _require_department(actor, case_id, q)
    recorded = await handle(FinalizeReport(case_id=case_id), command_context(actor.actor, case_id, "FinalizeReport"))
    return await _result(runtime, case_id, recorded)


@router.post("/cases/{case_id}/report/amendments", status_code=201, response_model=ReportResult, tags=["report"])
async def amend_report(case_id: UUID, body: AmendmentIn, actor: Physician, handle: Handle,
                       runtime: Runtime, q: Queries) -> ReportResult:
    """Amend the final report: a new version, final at once, with who, when and why; the earlier versions stay
    readable (`GET .../report/versions/{n}`). The desk then records its delivery again, as for the first. The
    signed-in physician amends it, on a case of their own department."""
    actor.require_named(body.physician, "physician")
    await _require_department(actor, case_id, q)
    command = AmendReport(case_id=case_id, physician_id=actor.staff_id, summary=body.summary, reason=body.reason,
                          note=body.note)
    recorded = await handle(command, command_context(actor.actor, case_id, "AmendReport"))
    return await _result(runtime, case_id, recorded)


@router.post("/cases/{case_id}/report/delivery", response_model=ReportResult, tags=["report"])
async def record_delivery(case_id: UUID, body: DeliveryIn, actor: Coordinator, handle: Handle,
                          runtime: Runtime) -> ReportResult:
    """Record how the final report reached its reader: handed to the patient at the end of an in-person
    consultation, or posted to the attending physician (always, for online consultations)."""
    recorded = await handle(RecordDelivery(case_id=case_id, channel=body.channel),
                            command_context(actor, case_id, "RecordDelivery"))
    return await _result(runtime, case_id, recorded)


@router.get("/cases/{case_id}/report", tags=["report"])
async def get_report(case_id: UUID, actor: ReportReader, runtime: Runtime, q: Queries) -> dict[str, Any]:
    report, version = await _report(runtime, case_id)
    if report.status is domain.ReportStatus.NOT_STARTED:
        raise NotFound(f"no report has been drafted for case {case_id}")
    draft = await q.latest_draft(case_id)
    assert draft is not None
    versions = await q.versions(case_id) if report.version else []
    current = versions[-1] if versions else {"summary": draft["summary"], "erased_on": draft["erased_on"]}
    # The medical text is the physicians' to read; the desk sees where the report stands, for its delivery.
    reads_text = actor.role == "physician"
    if reads_text:
        async with q.pool.acquire() as conn:
            await record_access(conn, actor, case_id, "read_opinion_report")
    return {
        "case_id": case_id, "report_id": report.report_id, "status": report.status.value,
        "draft_number": report.draft_number, "physician_id": report.physician_id,
        "summary": current["summary"] if reads_text else None, "summary_withheld": not reads_text,
        "summary_erased_on": current["erased_on"], "drafted_at": draft["drafted_at"],
        "consultation": {"mode": report.consultation_mode, "consulted_on": report.consulted_on},
        "finalized_on": report.finalized_on, "report_version": report.version,
        "versions": [_version_entry(entry, report, with_note=reads_text) for entry in versions],
        "delivery": {"channel": report.delivery_channel, "delivered_on": report.delivered_on,
                     "report_version": report.delivered_version},
        "fee_settled": report.fee_settled, "closed_on": report.closed_on, "version": version,
    }


def _version_entry(entry: dict[str, Any], report: domain.OpinionReport, *, with_note: bool) -> dict[str, Any]:
    """One version of the final report without its text: who, when, why (the physician's note, in their words,
    only for physicians)."""
    return {"report_version": entry["version"], "physician_id": entry["physician_id"], "at": entry["at"],
            "reason": entry["reason"], "note": entry["note"] if with_note else None,
            "current": entry["version"] == report.version}


@router.get("/cases/{case_id}/report/versions/{report_version}", tags=["report"])
async def get_report_version(case_id: UUID, report_version: Annotated[int, Path(ge=1, le=10_000)],
                             actor: TextReader, runtime: Runtime, q: Queries) -> dict[str, Any]:
    """One version of the final report as it was: 1 is the report as first finalized, 2 and on its amendments.
    Its text is the physicians' to read."""
    report, _ = await _report(runtime, case_id)
    entry = next((v for v in await q.versions(case_id) if v["version"] == report_version), None)
    if entry is None or report_version > report.version:
        raise NotFound(f"case {case_id} has no final report version {report_version}")
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, "read_opinion_report")
    return {"case_id": case_id, "report_version": entry["version"], "physician_id": entry["physician_id"],
            "at": entry["at"], "reason": entry["reason"], "note": entry["note"], "summary": entry["summary"],
            "summary_erased_on": entry["erased_on"]}


@router.get("/cases/{case_id}/report.pdf", tags=["report"], response_class=Response,
            responses={200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "The report letter, A4 PDF"}})
async def print_report(case_id: UUID, actor: ReportReader, request: Request, runtime: Runtime, q: Queries,
                       personal_data: PersonalData, hospital: Hospital) -> Response:
    """The final report as a letter to the attending physician, as its latest amendment has it, to hand to the
    patient or to post (record that with POST /cases/{id}/report/delivery). Names and addresses are read from
    intake (eventkit.service_identity) for this print only; after erasure they and the opinion print as ***."""
    report, _ = await _report(runtime, case_id)
    draft = await q.latest_draft(case_id) if report.status is not domain.ReportStatus.NOT_STARTED else None
    versions = await q.versions(case_id) if report.version else []
    # The letter prints the report as it stands: its latest amendment, if it was amended.
    summary = versions[-1]["summary"] if versions else draft["summary"] if draft else None
    board = await q.case(case_id)
    facts = LetterFacts.of(case_id, report, board["department"] if board else None, summary)
    person = await personal_data.personal_data(case_id, "report", request.headers["authorization"])
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, "print_opinion_report")
    content = await run_in_threadpool(render_letter, facts, person, hospital)
    return await issued_pdf(q.pool, "opinion_report", facts.reference, content, facts.filename)


# --- read models -------------------------------------------------------------------------------------------

@router.get("/cases/{case_id}/timeline", tags=["read models"])
async def case_timeline(case_id: UUID, _: DeskReader,
                        q: Queries) -> dict[str, Any]:
    """Every event of the case across the services, in the order they happened (envelope time, then
    service and stream sequence), with who caused it."""
    events = await q.timeline(case_id)
    if not events:
        raise NotFound(f"no events of case {case_id} have been received")
    return {"case_id": case_id, "case": await q.case(case_id), "events": events}


@router.get("/board", tags=["read models"])
async def case_board(_: DeskReader, q: Queries,
                     per_column: Annotated[int, Query(ge=1, le=500)] = 50,
                     department: Annotated[DepartmentCode | None, Query(description="only this department's")] = None,
                     submitted_to: Annotated[DeskDate | None, Query(description="only cases submitted on or before")
                                             ] = None) -> dict[str, Any]:
    """The case board: a column per stage, the most recently active cases first, each column's `total` counting
    all its cases (narrowed by `department` and `submitted_to` when given). `revision` changes whenever an event
    arrives (the desk console's live board polls it)."""
    return await q.board(per_column, department, submitted_to)


@router.get("/kpis", tags=["read models"])
async def kpis(_: DeskReader, q: Queries,
               first: Annotated[DeskDate | None, Query(alias="from")] = None,
               last: Annotated[DeskDate | None, Query(alias="to")] = None) -> dict[str, Any]:
    """Desk KPIs over the cases submitted from `from` to `to` (inclusive, Tokyo dates; open-ended when
    omitted): cases by stage, department and mode; declines by reason; business days from submission to
    consultation and to report delivery (median and 90th percentile, linear interpolation); no-show
    rate (no-shows / (no-shows + consultations)); fees captured minus refunds (yen)."""
    if first and last and first > last:
        raise InvalidCommand("`from` is after `to`", details=["from", "to"])
    return await q.kpis(first, last)


@router.get("/dashboard", tags=["dashboard"], include_in_schema=False)
async def dashboard(request: Request) -> RedirectResponse:
    """The page that watched the board is now the desk console's case board (its KPIs too), where staff are signed
    in: an old bookmark leads there."""
    return RedirectResponse(f"{request.app.state.console_url.rstrip('/')}/board", status_code=303)
