"""Intake's HTTP API for the desk: submit a case, record documents, screen, withdraw, correct its details, log the
contacts with the patient's side, erase (two privacy officers), and read; and, for the other services' documents,
the personal data each one prints."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, field_validator, model_validator

from eventkit.audit import NO_CASE, listing, record_access
from eventkit.auth import allow, allow_staff
from eventkit.bootstrap import Dispatcher
from eventkit.clock import tokyo_date
from eventkit.errors import InvalidCommand, NotFound
from eventkit.events import Actor, RecordedEvent
from eventkit.http import command_context, from_app_state, on_pool, today
from eventkit.input_policy import BirthDate, DeskDate, Prose, RequestModel
from eventkit.service_identity import ServiceCall, allow_service
from eventkit.staff import StaffMember
from intake.commands import (
    ApproveErasure,
    CorrectCaseDetails,
    Person,
    PostalAddress,
    ReceiveDocument,
    RecordContact,
    RequestErasure,
    ScreenCase,
    SubmitCase,
    WithdrawCase,
)
from intake.domain import PURPOSES, CaseStatus, retention_ends
from intake.queries import (
    CaseCursor,
    CaseFilters,
    CaseQueries,
    case_status,
    number_of_case,
    personal_data,
    received_documents,
)
from intake.repository import CASES
from intake.search import (
    BlindIndex,
    SearchKind,
    normalise_birth_date,
    normalise_case_number,
    normalise_name,
    normalise_phone,
)
from secondopinion_contracts.codes import (
    ContactChannel,
    ContactDirection,
    CorrectionReason,
    DocumentKind,
    Mode,
    RefusalReason,
    Relationship,
    WithdrawalReason,
)
from secondopinion_contracts.departments import CATALOGUE, DepartmentCode
from secondopinion_contracts.events.intake import CaseDetailsCorrected, DocumentReceived

router = APIRouter(tags=["cases"])
Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
Queries = Annotated[CaseQueries, Depends(on_pool(CaseQueries))]

Name = Annotated[str, Field(min_length=1, max_length=100)]
Phone = Annotated[str, Field(min_length=3, max_length=30, pattern=r"^[0-9+\-() ]+$")]


class Strict(RequestModel):
    pass


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
    name_kana: Name | None = Field(None, description="The name in kana (フリガナ): the case is found by either.")
    birth_date: BirthDate
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
    department: DepartmentCode = Field(description="A department code (GET /departments), e.g. cardiology.")
    question: Annotated[str, Field(min_length=1, max_length=4000), Prose]
    attending_physician: AttendingPhysicianIn
    wants_treatment_here: bool
    complaint_or_litigation: bool


class DocumentIn(Strict):
    kind: DocumentKind
    received_on: DeskDate


class ScreeningIn(Strict):
    decision: Literal["accept", "decline"]
    reasons: list[RefusalReason] = Field(default_factory=list, max_length=len(RefusalReason))
    physician: Name | None = Field(
        None, description="Taken from the sign-in; if given (older clients) it must be the signed-in physician.")

    @model_validator(mode="after")
    def _reasons_only_for_a_decline(self) -> ScreeningIn:
        if self.decision == "accept" and self.reasons:
            raise ValueError("an accepted case carries no refusal reasons")
        return self


class WithdrawalIn(Strict):
    reason: WithdrawalReason


class CommandResult(BaseModel):
    case_id: UUID
    case_number: str | None = Field(None, description="The number read over the phone, e.g. SO-2026-00123.")
    status: str
    events: list[str]
    decline_reasons: list[str] = []
    recommendation: str | None = None
    document_id: UUID | None = None
    copy_of: UUID | None = Field(None, description="The first document of the same kind, when this one is a copy.")
    erasure_requested_by: str | None = None
    correction_id: UUID | None = None
    corrected_fields: list[str] | None = Field(None, description="What the correction changed (not the values).")
    contact_id: UUID | None = None


async def _result(case_id: UUID, recorded: list[RecordedEvent], q: CaseQueries, **extra: Any) -> CommandResult:
    view = await q.get(case_id)
    assert view is not None
    return CommandResult(case_id=case_id, case_number=view["case_number"], status=view["status"],
                         events=[e.name for e in recorded],
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
        patient_name=body.patient.name, patient_name_kana=body.patient.name_kana,
        patient_birth_date=body.patient.birth_date,
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
    copy_of = next((e.data.copy_of for e in recorded if isinstance(e.data, DocumentReceived)), None)
    return await _result(case_id, recorded, q, document_id=document_id, copy_of=copy_of)


@router.post("/cases/{case_id}/screening", response_model=CommandResult)
async def screen_case(case_id: UUID, body: ScreeningIn,
                      physician: Annotated[StaffMember, Depends(allow_staff("physician"))],
                      handle: Handle,
                      q: Queries) -> CommandResult:
    """The signed-in physician screens a case of their own department; the screening records them."""
    physician.require_named(body.physician, "physician")
    department = await q.department(case_id)
    if department is None:
        raise NotFound(f"no case {case_id}")
    physician.require_department(department)
    command = ScreenCase(case_id=case_id, accept=body.decision == "accept", physician=physician.staff_id,
                         reasons=tuple(body.reasons))
    recorded = await handle(command, command_context(physician.actor, case_id, "ScreenCase"))
    return await _result(case_id, recorded, q)


@router.post("/cases/{case_id}/withdrawal", response_model=CommandResult)
async def withdraw_case(case_id: UUID, body: WithdrawalIn, actor: Annotated[Actor, Depends(allow("coordinator"))],
                        handle: Handle,
                        q: Queries) -> CommandResult:
    recorded = await handle(WithdrawCase(case_id=case_id, reason=body.reason),
                            command_context(actor, case_id, "WithdrawCase"))
    return await _result(case_id, recorded, q)


class RequesterCorrectionIn(Strict):
    name: Name | None = None
    phone: Phone | None = None


class PatientCorrectionIn(Strict):
    name: Name | None = None
    birth_date: BirthDate | None = None
    postal_address: PostalAddressIn | None = None
    deceased: bool | None = None


class AttendingPhysicianCorrectionIn(Strict):
    name: Name | None = None
    institution: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    institution_address: PostalAddressIn | None = None
    consents: bool | None = None


class CorrectionIn(Strict):
    """Only what is corrected, with the corrected value; what is left out stays as recorded."""

    reason: CorrectionReason
    note: Annotated[str | None, Field(min_length=1, max_length=200, description=(
        "A short reason in the coordinator's words; sealed with the case's personal data, never published."))] = None
    requester: RequesterCorrectionIn | None = None
    patient: PatientCorrectionIn | None = None
    attending_physician: AttendingPhysicianCorrectionIn | None = None
    question: Annotated[str | None, Field(min_length=1, max_length=4000), Prose] = None
    wants_treatment_here: bool | None = None
    complaint_or_litigation: bool | None = None

    @model_validator(mode="after")
    def _corrects_something(self) -> CorrectionIn:
        parts = (self.requester, self.patient, self.attending_physician)
        given = [value for part in parts if part is not None for value in part.model_dump().values()]
        given += [self.question, self.wants_treatment_here, self.complaint_or_litigation]
        if all(value is None for value in given):
            raise ValueError("a correction gives at least one corrected field")
        return self

    def command(self, case_id: UUID, correction_id: UUID, corrected_on: date) -> CorrectCaseDetails:
        requester = self.requester or RequesterCorrectionIn()
        patient = self.patient or PatientCorrectionIn()
        attending = self.attending_physician or AttendingPhysicianCorrectionIn()
        return CorrectCaseDetails(
            case_id=case_id, correction_id=correction_id, reason=self.reason, corrected_on=corrected_on,
            note=self.note, requester_name=requester.name, requester_phone=requester.phone,
            patient_name=patient.name, patient_birth_date=patient.birth_date,
            patient_postal_address=patient.postal_address.command() if patient.postal_address else None,
            attending_physician_name=attending.name, attending_institution=attending.institution,
            attending_institution_address=(attending.institution_address.command()
                                           if attending.institution_address else None),
            question=self.question, patient_deceased=patient.deceased,
            attending_physician_consents=attending.consents, wants_treatment_here=self.wants_treatment_here,
            complaint_or_litigation=self.complaint_or_litigation)


@router.post("/cases/{case_id}/corrections", status_code=201, response_model=CommandResult)
async def correct_case(case_id: UUID, body: CorrectionIn, actor: Annotated[Actor, Depends(allow("coordinator"))],
                       corrected_on: Annotated[date, Depends(today)], handle: Handle,
                       q: Queries) -> CommandResult:
    """Correct what was recorded (a mistyped name, phone, address, birth date, attending physician, or a fact of
    the request). The event names the fields and the reason, never the values. A corrected fact that shows a
    refusal reason declines the case at once (`CaseDeclined`, screening `automatic`); an accepted case is not
    declined by a correction (409 `refusal_after_acceptance`: withdraw it instead)."""
    correction_id = uuid4()
    recorded = await handle(body.command(case_id, correction_id, corrected_on),
                            command_context(actor, case_id, "CorrectCaseDetails"))
    fields = next((e.data.fields for e in recorded if isinstance(e.data, CaseDetailsCorrected)), [])
    return await _result(case_id, recorded, q, correction_id=correction_id,
                         corrected_fields=[field.value for field in fields])


class ContactIn(Strict):
    contacted_on: DeskDate = Field(description="When the call was made, or the letter or e-mail sent or received.")
    direction: ContactDirection
    channel: ContactChannel
    note: Annotated[str, Field(min_length=1, max_length=2000, description=(
        "What was said, briefly: personal data, sealed with the case's key, never published.")), Prose]


@router.post("/cases/{case_id}/contacts", status_code=201, response_model=CommandResult)
async def record_contact(case_id: UUID, body: ContactIn,
                         coordinator: Annotated[StaffMember, Depends(allow_staff("coordinator"))],
                         recorded_on: Annotated[date, Depends(today)], handle: Handle, q: Queries) -> CommandResult:
    """Log a call, letter or e-mail to or from the patient's side, made or taken by the signed-in coordinator."""
    contact_id = uuid4()
    command = RecordContact(case_id=case_id, contact_id=contact_id, contacted_on=body.contacted_on,
                            direction=body.direction, channel=body.channel, note=body.note,
                            handled_by=coordinator.staff_id, recorded_on=recorded_on)
    recorded = await handle(command, command_context(coordinator.actor, case_id, "RecordContact"))
    return await _result(case_id, recorded, q, contact_id=contact_id)


@router.get("/cases/{case_id}/contacts")
async def list_contacts(case_id: UUID, actor: Annotated[Actor, Depends(allow("coordinator", "physician"))],
                        q: Queries) -> dict[str, Any]:
    """The case's contact log, oldest first, with each note (*** once the case's personal data is erased). Reading
    the notes is written to the access log."""
    contacts = await q.contacts(case_id)
    if contacts is None:
        raise NotFound(f"no case {case_id}")
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, "read_contact_notes")
    return {"case_id": str(case_id), "contacts": contacts}


PrivacyOfficer = Annotated[Actor, Depends(allow("privacy_officer"))]


@router.post("/cases/{case_id}/personal-data/erasure", status_code=202, response_model=CommandResult)
async def request_erasure(case_id: UUID, actor: PrivacyOfficer, requested_on: Annotated[date, Depends(today)],
                          handle: Handle, q: Queries) -> CommandResult:
    """After the retention period, a privacy officer requests the erasure; it waits for a second one's approval."""
    recorded = await handle(RequestErasure(case_id=case_id, requested_on=requested_on),
                            command_context(actor, case_id, "RequestErasure"))
    return await _result(case_id, recorded, q, erasure_requested_by=actor.id)


@router.post("/cases/{case_id}/personal-data/erasure/approval", response_model=CommandResult)
async def approve_erasure(case_id: UUID, actor: PrivacyOfficer, approved_on: Annotated[date, Depends(today)],
                          handle: Handle, q: Queries) -> CommandResult:
    """Another privacy officer approves: the case's key is destroyed; its personal data is unreadable everywhere."""
    recorded = await handle(ApproveErasure(case_id=case_id, approved_on=approved_on),
                            command_context(actor, case_id, "ErasePersonalData"))
    return await _result(case_id, recorded, q)


ErasureReader = Annotated[Actor, Depends(allow("privacy_officer", "auditor"))]
RetentionYears = Annotated[int, Depends(from_app_state("retention_years", int))]


@router.get("/cases/{case_id}/personal-data/erasure")
async def erasure_of_case(case_id: UUID, _: ErasureReader, q: Queries, years: RetentionYears) -> dict[str, Any]:
    """Where the erasure of a case's personal data stands, for the privacy officers' page: the case's number,
    status and dates, the day its retention period ends (the erasure may be requested from that day on), the
    day it was erased, and the request waiting for a second officer's approval (who, when). No personal data."""
    row = await q.erasure(case_id, CASES.stream_id(case_id))
    if row is None:
        raise NotFound(f"no case {case_id}")
    last_activity_on = tokyo_date(row["last_activity_at"])
    request = None
    if row["requested_by"] is not None:
        request = {"requested_by": row["requested_by"], "requested_on": row["requested_on"],
                   "requested_at": row["requested_at"]}
    return {"case_id": row["case_id"], "case_number": row["case_number"], "status": row["status"],
            "department": row["department"], "submitted_on": row["submitted_on"],
            "last_activity_on": last_activity_on,
            "retention_ends_on": retention_ends(last_activity_on, years),
            "personal_data_erased_on": row["personal_data_erased_on"], "request": request}


class ErasureRequestsIn(Strict):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=2**63 - 1, description="`next_offset` of the previous page.")


ErasureLister = Annotated[Actor, Depends(listing("list_erasure_requests", "privacy_officer", "auditor"))]


@router.get("/personal-data/erasure-requests", tags=["personal data"])
async def erasure_requests(_: ErasureLister, q: Queries,
                           listed: Annotated[ErasureRequestsIn, Query()]) -> dict[str, Any]:
    """The erasures waiting for a second privacy officer's approval, the longest waiting first, a page at a time:
    case id and number, who requested it and when; no personal data. `next_offset` (null on the last page) asks
    for the next page. Each listing is written to the access log."""
    rows = await q.erasure_requests(listed.limit + 1, listed.offset)
    more = len(rows) > listed.limit
    return {"requests": rows[:listed.limit], "limit": listed.limit, "offset": listed.offset,
            "next_offset": listed.offset + listed.limit if more else None}


class CaseSearchIn(Strict):
    """What a caller gives to be found by: any of these, each normalised (full-width or half-width, spaces, hiragana
    or katakana); a case is found when it matches every one given. Any other query parameter is refused (422)."""

    case_number: str | None = Field(None, max_length=40, description="e.g. SO-2026-00123 (as read over the phone).")
    name: str | None = Field(None, max_length=100, description="The patient's name, in kanji or in kana.")
    birth_date: str | None = Field(None, max_length=40, description="The patient's, e.g. 1968-04-01 or 1968年4月1日.")
    phone: str | None = Field(None, max_length=40, description="The requester's phone, any punctuation.")
    limit: int = Field(20, ge=1, le=100)


CaseSearcher = Annotated[Actor, Depends(allow("coordinator", "cashier", "physician", "privacy_officer"))]
BlindIndexOf = Annotated[BlindIndex, Depends(from_app_state("blind_index", BlindIndex))]


@router.get("/cases/search")
async def search_cases(actor: CaseSearcher, q: Queries, index: BlindIndexOf,
                       searched: Annotated[CaseSearchIn, Query()]) -> dict[str, Any]:
    """The cases a caller is found by: their case number, the patient's name (kanji or kana), birth date, or the
    requester's phone; no personal data in the answer (open the case for that). Each search is written to the
    access log, naming what it searched by, never the values. An erased case is found by its number only. A
    privacy officer searches by the case number alone (403 for any other key)."""
    problems, digests, number = [], [], None
    if searched.case_number is not None:
        number = normalise_case_number(searched.case_number)
        if number is None:
            problems.append("`case_number` is not a case number such as SO-2026-00123")
    if searched.name is not None:
        if not (name := normalise_name(searched.name)):
            problems.append("`name` has no letters")
        digests.append((SearchKind.NAME, index.digest(SearchKind.NAME, name)))
    if searched.birth_date is not None:
        if (born := normalise_birth_date(searched.birth_date)) is None:
            problems.append("`birth_date` is not a date such as 1968-04-01")
        else:
            digests.append((SearchKind.BIRTH_DATE, index.digest(SearchKind.BIRTH_DATE, born)))
    if searched.phone is not None:
        if len(phone := normalise_phone(searched.phone)) < 3:
            problems.append("`phone` has fewer than 3 digits")
        digests.append((SearchKind.PHONE, index.digest(SearchKind.PHONE, phone)))
    by = [key for key in ("case_number", "name", "birth_date", "phone") if getattr(searched, key) is not None]
    if actor.role == "privacy_officer" and by != ["case_number"]:
        # What the erasure needs, and no more: a privacy officer finds a case by its number only.
        raise HTTPException(403, "a privacy officer finds a case by its case number only")
    if not by:
        problems.append("give at least one of `case_number`, `name`, `birth_date`, `phone`")
    if problems:
        raise InvalidCommand("; ".join(problems), details=problems)
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, NO_CASE, "search_cases_by_" + "_and_".join(by))
    return {"cases": await q.search(number, digests, searched.limit), "searched_by": by}


CounterReader = Annotated[Actor, Depends(allow("cashier"))]
COUNTER_CASES = 100  # a day's consultations, or one search's answers, at most


@router.get("/cases/names-for-counter")
async def names_for_counter(actor: CounterReader, q: Queries,
                            case_id: Annotated[list[UUID], Query(min_length=1, max_length=COUNTER_CASES)]
                            ) -> dict[str, Any]:
    """For the cashier: the names of the people at the counter (the patient's, kanji and kana, and who asked) of
    the accepted cases among the repeated `case_id` (the others are left out), so that the cashier knows whose
    invoice is whose; no contact, address or question. Each case read is written to the access log."""
    async with q.pool.acquire() as conn, conn.transaction():
        named = await q.names_for_counter(conn, case_id)
        for case in named:
            await record_access(conn, actor, case["case_id"], "read_case_names_for_counter")
    return {"cases": named}


@router.get("/cases/{case_id}")
async def get_case(case_id: UUID, actor: Annotated[Actor, Depends(allow("coordinator", "physician"))],
                   q: Queries) -> dict[str, Any]:
    view = await q.get(case_id)
    if view is None:
        raise NotFound(f"no case {case_id}")
    async with q.pool.acquire() as conn:
        await record_access(conn, actor, case_id, "read_case_personal_data")
    return view


# A service's own token, acting for a signed-in staff member (eventkit.service_identity).
ServicePrinting = Annotated[ServiceCall, Depends(allow_service(*sorted({p.service for p in PURPOSES.values()})))]


# The documents that print the case number (SO-2026-00123), by which the patient or physician calls back.
NUMBERED = ("slip", "report")


@router.get("/cases/{case_id}/personal-data/for/{purpose}", tags=["personal data"])
async def personal_data_for(case_id: UUID, purpose: Literal["receipt", "slip", "report"], call: ServicePrinting,
                            q: Queries) -> dict[str, Any]:
    """The fields one document prints (*** each once erased), for the service that prints it, acting for staff
    whose role prints it, and only of an accepted case (the other services hold nothing of any other case). The
    access log names both the staff member and the service. The slip also gets the kinds of the documents
    received so far (it asks only for what is missing); the slip and the report also the case number (not
    personal data: beside the fields, never masked)."""
    wanted = PURPOSES[purpose]
    if call.service != wanted.service:
        raise HTTPException(403, f"the {purpose} is printed by the {wanted.service} service")
    roles = set(call.person.roles) & wanted.roles
    if not roles:
        raise HTTPException(403, f"the {purpose} is printed by {', '.join(sorted(wanted.roles))}")
    async with q.pool.acquire() as conn:
        status = await case_status(conn, case_id)
        if status is None:
            raise NotFound(f"no case {case_id}")
        if status != CaseStatus.ACCEPTED:
            raise HTTPException(409, f"the case is {status}: no {purpose} is printed for it")
        person = await personal_data(conn, case_id)
        actor = Actor(id=call.person.staff_id, role=sorted(roles)[0])
        await record_access(conn, actor, case_id, f"read_personal_data_for_{purpose}_via_{call.service}")
        received = await received_documents(conn, case_id) if purpose == "slip" else None
        number = await number_of_case(conn, case_id) if purpose in NUMBERED else None
    answer: dict[str, Any] = {"case_id": str(case_id), "purpose": purpose,
                              "fields": {name: person.get(source) for name, source in wanted.fields.items()}}
    if purpose in NUMBERED:
        answer["case_number"] = number
    return answer if received is None else {**answer, "received_documents": received}


# Every staff role the desk shows departments to (its pages name them in Japanese from this list).
DepartmentReader = Annotated[Actor, Depends(allow("coordinator", "physician", "cashier", "auditor", "privacy_officer"))]


@router.get("/departments", tags=["departments"])
async def departments(_: DepartmentReader,
                      offered: Annotated[tuple[str, ...], Depends(from_app_state("departments", tuple))],
                      ) -> dict[str, Any]:
    """The departments whose specialists take second-opinion requests now, with their codes (what requests and
    events carry) and their Japanese and English names. A request for any other department is declined as
    `no_specialist_available`."""
    return {"departments": [{"code": code, "name_ja": CATALOGUE[code].name_ja, "name_en": CATALOGUE[code].name_en}
                            for code in offered]}


class CaseListIn(Strict):
    """What the case list is narrowed and ordered by; any other query parameter is refused (422), so a search
    the list cannot do never looks like one that found everything."""

    status: list[CaseStatus] = Field(
        default_factory=list, max_length=len(CaseStatus),
        description="Any of these statuses (repeat `status` for several, e.g. the cases still waiting for documents: "
                    "`status=submitted&status=awaiting_documents`); none: every status.")
    department: DepartmentCode | None = None
    submitted_from: date | None = Field(None, description="Submitted on or after this day (Asia/Tokyo).")
    submitted_to: date | None = Field(None, description="Submitted on or before this day (Asia/Tokyo).")
    sort: Literal["newest", "oldest"] = Field(
        "newest", description="By age: `newest` submitted first, or `oldest` (the longest waiting) first.")
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the previous page.")
    # OFFSET is a PostgreSQL bigint: a larger offset could not even be sent to the database.
    offset: int = Field(0, ge=0, le=2**63 - 1, description="Rows to skip (prefer `cursor`).")


CaseLister = Annotated[Actor, Depends(listing("list_cases", "coordinator", "physician", "auditor", "privacy_officer"))]


@router.get("/cases")
async def list_cases(_: CaseLister, q: Queries, listed: Annotated[CaseListIn, Query()],
                     on: Annotated[date, Depends(today)]) -> dict[str, Any]:
    """The cases the desk works from, a page at a time: filtered by status, department and submission dates,
    newest or oldest first; `next_cursor` (null on the last page) asks for the next page."""
    problems = []
    if listed.submitted_from and listed.submitted_to and listed.submitted_from > listed.submitted_to:
        problems.append("`submitted_from` is after `submitted_to`")
    after = None
    if listed.cursor is not None:
        try:
            after = CaseCursor.decode(listed.cursor)
        except ValueError as error:
            problems.append(str(error))
        if after is not None and after.sort != listed.sort:
            problems.append(f"the cursor is of the `{after.sort}` order, not `{listed.sort}`")
        if listed.offset:
            problems.append("give `cursor` or `offset`, not both")
    if problems:
        raise InvalidCommand("; ".join(problems), details=problems)
    filters = CaseFilters(status=tuple(s.value for s in listed.status), department=listed.department,
                          submitted_from=listed.submitted_from, submitted_to=listed.submitted_to, sort=listed.sort)
    rows, following = await q.list(filters, listed.limit, listed.offset, after)
    return {"cases": [{**row, "age_days": (on - row["submitted_on"]).days} for row in rows],
            "limit": listed.limit, "offset": listed.offset, "sort": listed.sort,
            "next_cursor": following.encode() if following else None}
