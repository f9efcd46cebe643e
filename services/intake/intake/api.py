"""Intake's HTTP API for the desk: submit a case, record documents, screen, withdraw, and read."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from eventkit.audit import record_access
from eventkit.auth import allow
from eventkit.bootstrap import Dispatcher
from eventkit.crypto import to_text
from eventkit.errors import Gone, NotFound
from eventkit.events import Actor, RecordedEvent
from eventkit.http import command_context, from_app_state, on_pool, today
from eventkit.personal_data import PrintedDocument
from intake.commands import (
    ErasePersonalData,
    Person,
    PostalAddress,
    ReceiveDocument,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from intake.domain import CaseStatus
from intake.queries import CaseQueries
from intake.repository import CASE_KEYS
from secondopinion_contracts.codes import DocumentKind, Mode, RefusalReason, Relationship, WithdrawalReason
from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN

router = APIRouter(tags=["cases"])
Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
Queries = Annotated[CaseQueries, Depends(on_pool(CaseQueries))]

Name = Annotated[str, Field(min_length=1, max_length=100)]
Phone = Annotated[str, Field(min_length=3, max_length=30, pattern=r"^[0-9+\-() ]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequesterIn(Strict):
    relationship: Relationship
    name: Name
    phone: Phone | None = None


class PostalAddressIn(Strict):
    postal_code: Annotated[str, Field(pattern=r"^[0-9]{3}-?[0-9]{4}$", description="〒, e.g. 980-8574")]
    address: Annotated[str, Field(min_length=1, max_length=200, description="Prefecture, city, street, building")]

    @field_validator("postal_code")
    @classmethod
    def _hyphenated(cls, value: str) -> str:
        digits = value.replace("-", "")
        return f"{digits[:3]}-{digits[3:]}"

    def command(self) -> PostalAddress:
        return PostalAddress(postal_code=self.postal_code, address=self.address)


class PatientIn(Strict):
    name: Name
    birth_date: date
    postal_address: PostalAddressIn | None = Field(None, description="Where the appointment slip is posted.")
    deceased: bool = False
    consents: bool | None = Field(
        None, description="Whether the patient agrees to the request (family requests); unknown until the form.")


class AttendingPhysicianIn(Strict):
    name: Name
    institution: Annotated[str, Field(min_length=1, max_length=200)]
    institution_address: PostalAddressIn | None = Field(None, description="Where the report is posted.")
    consents: bool


class SubmitCaseIn(Strict):
    requester: RequesterIn
    patient: PatientIn
    mode: Mode
    department: Annotated[str, Field(pattern=DEPARTMENT_PATTERN)]
    question: Annotated[str, Field(min_length=1, max_length=4000)]
    attending_physician: AttendingPhysicianIn
    wants_treatment_here: bool
    complaint_or_litigation: bool


class DocumentIn(Strict):
    kind: DocumentKind
    received_on: date


class ScreeningIn(Strict):
    decision: Literal["accept", "decline"]
    reasons: list[RefusalReason] = Field(default_factory=list, max_length=len(RefusalReason))
    physician: Name


class WithdrawalIn(Strict):
    reason: WithdrawalReason


class CommandResult(BaseModel):
    case_id: UUID
    status: str
    events: list[str]
    decline_reasons: list[str] = []
    recommendation: str | None = None
    document_id: UUID | None = None


async def _result(case_id: UUID, recorded: list[RecordedEvent], q: CaseQueries, **extra: Any) -> CommandResult:
    view = await q.get(case_id)
    assert view is not None
    return CommandResult(case_id=case_id, status=view["status"], events=[e.name for e in recorded],
                         decline_reasons=view["decline_reasons"], recommendation=view["recommendation"], **extra)


@router.post("/cases", status_code=201, response_model=CommandResult)
async def submit_case(body: SubmitCaseIn, actor: Annotated[Actor, Depends(allow("coordinator"))],
                      submitted_on: Annotated[date, Depends(today)],
                      handle: Handle,
                      q: Queries) -> CommandResult:
    case_id = uuid4()
    command = SubmitCase(
        case_id=case_id, requester_relationship=body.requester.relationship,
        requester=Person(name=body.requester.name, phone=body.requester.phone),
        patient_name=body.patient.name, patient_birth_date=body.patient.birth_date,
        patient_postal_address=body.patient.postal_address.command() if body.patient.postal_address else None,
        attending_institution_address=(body.attending_physician.institution_address.command()
                                       if body.attending_physician.institution_address else None),
        patient_deceased=body.patient.deceased, patient_consents=body.patient.consents, mode=body.mode,
        department=body.department, question=body.question,
        attending_physician_name=body.attending_physician.name,
        attending_institution=body.attending_physician.institution,
        attending_physician_consents=body.attending_physician.consents,
        wants_treatment_here=body.wants_treatment_here, complaint_or_litigation=body.complaint_or_litigation,
        submitted_on=submitted_on,
    )
    recorded = await handle(command, command_context(actor, case_id, "SubmitCase"))
    return await _result(case_id, recorded, q)


@router.post("/cases/{case_id}/documents", status_code=201, response_model=CommandResult)
async def receive_document(case_id: UUID, body: DocumentIn, actor: Annotated[Actor, Depends(allow("coordinator"))],
                           handle: Handle,
                           q: Queries) -> CommandResult:
    document_id = uuid4()
    command = ReceiveDocument(case_id=case_id, document_id=document_id, kind=body.kind, received_on=body.received_on)
    recorded = await handle(command, command_context(actor, case_id, "ReceiveDocument"))
    return await _result(case_id, recorded, q, document_id=document_id)


@router.post("/cases/{case_id}/screening", response_model=CommandResult)
async def screen_case(case_id: UUID, body: ScreeningIn, actor: Annotated[Actor, Depends(allow("physician"))],
                      handle: Handle,
                      q: Queries) -> CommandResult:
    command = ScreenCase(case_id=case_id, accept=body.decision == "accept", physician=body.physician,
                         reasons=tuple(body.reasons))
    recorded = await handle(command, command_context(actor, case_id, "ScreenCase"))
    return await _result(case_id, recorded, q)


@router.post("/cases/{case_id}/withdrawal", response_model=CommandResult)
async def withdraw_case(case_id: UUID, body: WithdrawalIn, actor: Annotated[Actor, Depends(allow("coordinator"))],
                        handle: Handle,
                        q: Queries) -> CommandResult:
    recorded = await handle(WithdrawCase(case_id=case_id, reason=body.reason),
                            command_context(actor, case_id, "WithdrawCase"))
    return await _result(case_id, recorded, q)


@router.post("/cases/{case_id}/personal-data/erasure", response_model=CommandResult)
async def erase_personal_data(case_id: UUID, actor: Annotated[Actor, Depends(allow("auditor"))],
                              requested_on: Annotated[date, Depends(today)],
                              handle: Handle,
                              q: Queries) -> CommandResult:
    """After the retention period: destroy the case's key; its personal data becomes unreadable everywhere."""
    recorded = await handle(ErasePersonalData(case_id=case_id, requested_on=requested_on),
                            command_context(actor, case_id, "ErasePersonalData"))
    return await _result(case_id, recorded, q)


@router.get("/cases/{case_id}")
async def get_case(case_id: UUID, actor: Annotated[Actor, Depends(allow("coordinator", "physician"))],
                   q: Queries) -> dict[str, Any]:
    view = await q.get(case_id)
    if view is None:
        raise NotFound(f"no case {case_id}")
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, "read_case_personal_data")
    return view


@router.get("/cases/{case_id}/personal-data/key")
async def personal_data_key(case_id: UUID, actor: Annotated[Actor, Depends(allow("cashier"))],
                            q: Queries) -> dict[str, Any]:
    """The case's key, for billing to open the payer's name it received sealed in CaseSubmitted and print it on a
    receipt (billing relays the cashier's token, so the access log names the cashier). 410 once erased."""
    if await q.get(case_id) is None:
        raise NotFound(f"no case {case_id}")
    async with q.pool.acquire() as conn:
        key = await CASE_KEYS.key(conn, case_id)
        if key is None:
            raise Gone("the case's personal data was erased")
        await record_access(conn, actor, case_id, "read_case_key_for_receipt")
    return {"case_id": str(case_id), "key": to_text(key)}


# Who may print which document (the route admits their union; each document is checked against its own roles).
DOCUMENT_READERS = {"slip": frozenset({"coordinator"}), "report": frozenset({"coordinator", "physician"})}


@router.get("/cases/{case_id}/personal-data/documents/{document}")
async def personal_data_for_document(case_id: UUID, document: PrintedDocument,
                                     actor: Annotated[Actor, Depends(allow("coordinator", "physician"))],
                                     q: Queries) -> dict[str, Any]:
    """Only the fields one printed document shows (the appointment slip: the patient's name and postal address;
    the report letter: the patient's name and birth date, the attending physician, their institution and its
    address), with the kinds of the documents already received, for scheduling or reporting printing it with
    the staff member's token relayed. Every read is in the access log; after erasure every field is ***."""
    if actor.role not in DOCUMENT_READERS[document]:
        raise HTTPException(403, f"the {document} is printed by {', '.join(sorted(DOCUMENT_READERS[document]))}")
    printed = await q.for_document(case_id, document)
    if printed is None:
        raise NotFound(f"no case {case_id}")
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, f"read_personal_data_for_{document}")
    return {"case_id": str(case_id), "document": document, **printed}


# OFFSET is a PostgreSQL bigint: a larger offset could not even be sent to the database.
@router.get("/cases")
async def list_cases(_: Annotated[Actor, Depends(allow("coordinator", "physician", "auditor"))],
                     q: Queries,
                     status: CaseStatus | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0) -> dict[str, Any]:
    rows = await q.list(status.value if status else None, limit, offset)
    return {"cases": rows, "limit": limit, "offset": offset}
