"""Intake's persistence: the Case repository over eventkit, the case_view projection, personal data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.aggregate import AggregateRepository
from eventkit.crypto import MASK, CaseKeys
from eventkit.db import Conn, retried_read
from eventkit.events import RecordedEvent
from eventkit.store import EventStore, EventTypes
from intake import domain
from intake.commands import SubmitCase
from secondopinion_contracts.codes import ConsentBasis, DeclineReason, DocumentKind, Mode, Recommendation, Relationship
from secondopinion_contracts.events import intake as events

EVENT_TYPES = EventTypes.of(*events.EVENTS, upcasters={("CaseDeclined", 1): events.CaseDeclinedV2.upcast_v1})
STREAM_TYPE = "case"


def case_repository(store: EventStore) -> AggregateRepository[domain.Case]:
    return AggregateRepository(store, STREAM_TYPE, domain.Case, domain.evolve)


def case_id_of(stream_id: str) -> UUID:
    return UUID(stream_id.removeprefix(f"{STREAM_TYPE}-"))


class CaseViewProjection:
    """One row per case: status, documents, consent, reasons and a history of what happened."""

    name = "case_view"
    tables = ("case_view",)

    async def apply(self, conn: Conn, recorded: Sequence[RecordedEvent]) -> None:
        for event in recorded:
            if event.stream_type != STREAM_TYPE:
                continue
            await self._apply_one(conn, event)

    async def _apply_one(self, conn: Conn, event: RecordedEvent) -> None:
        case_id = case_id_of(event.stream_id)
        entry = json.dumps([{
            "event": event.name, "version": event.version, "at": event.recorded_at.isoformat(),
            "by": event.metadata.get("actor", {}),
            "data": {k: v for k, v in event.data.model_dump(mode="json").items() if k != "case_id"},
        }])
        data = event.data
        if isinstance(data, events.CaseSubmitted):
            await conn.execute(
                """INSERT INTO case_view (case_id, status, mode, department, requester_relationship, patient_is_minor,
                                          submitted_on, version, updated_at, history)
                   VALUES ($1, 'submitted', $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
                   ON CONFLICT (case_id) DO NOTHING""",
                case_id, data.mode.value, data.department, data.requester_relationship.value, data.patient_is_minor,
                data.submitted_on, event.version, event.recorded_at, entry,
            )
            return
        row = await conn.fetchrow("SELECT * FROM case_view WHERE case_id = $1 FOR UPDATE", case_id)
        if row is None or row["version"] >= event.version:
            return  # already applied (rebuild and live apply are idempotent per stream version)
        before = case_from_row(row)
        after = domain.evolve(before, data)
        documents = json.loads(row["documents"])
        if isinstance(data, events.DocumentReceived):
            documents.append({"document_id": str(data.document_id), "kind": data.kind.value,
                              "received_on": data.received_on.isoformat()})
        erased_on = data.erased_on if isinstance(data, events.PersonalDataErased) else row["personal_data_erased_on"]
        await conn.execute(
            """UPDATE case_view SET status = $2, consent_basis = $3, documents = $4::jsonb, decline_reasons = $5::jsonb,
                                    personal_data_erased_on = $10,
                                    history = history || $6::jsonb, version = $7, updated_at = $8, recommendation = $9
               WHERE case_id = $1""",
            case_id, after.status.value, after.consent.value if after.consent else None, json.dumps(documents),
            json.dumps([reason.value for reason in after.reasons]), entry, event.version, event.recorded_at,
            after.recommendation.value if after.recommendation else None, erased_on,
        )


def case_from_row(row: asyncpg.Record) -> domain.Case:
    return domain.Case(
        status=domain.CaseStatus(row["status"]),
        mode=Mode(row["mode"]),
        department=row["department"],
        relationship=Relationship(row["requester_relationship"]),
        patient_is_minor=row["patient_is_minor"],
        documents=tuple(DocumentKind(doc["kind"]) for doc in json.loads(row["documents"])),
        consent=ConsentBasis(row["consent_basis"]) if row["consent_basis"] else None,
        reasons=tuple(DeclineReason(reason) for reason in json.loads(row["decline_reasons"])),
        recommendation=Recommendation(row["recommendation"]) if row["recommendation"] else None,
    )


PERSONAL_FIELDS = ("requester_name", "requester_phone", "patient_name", "patient_birth_date", "attending_name",
                   "attending_institution", "question", "patient_postal_code", "patient_address",
                   "attending_postal_code", "attending_address")
# What each printed document shows of them (GET /cases/{id}/personal-data/documents/{document}).
DOCUMENT_FIELDS = {
    "slip": ("patient_name", "patient_postal_code", "patient_address"),
    "report": ("patient_name", "patient_birth_date", "attending_name", "attending_institution",
               "attending_postal_code", "attending_address"),
}
CASE_KEYS = CaseKeys()


async def save_personal_data(conn: Conn, command: SubmitCase) -> None:
    """Names, phone, birth date, postal addresses and the question, sealed with the case's own key (never in
    events)."""
    patient_address, attending_address = command.patient_postal_address, command.attending_institution_address
    sealed = await CASE_KEYS.seal(conn, command.case_id, {
        "patient_postal_code": patient_address.postal_code if patient_address else None,
        "patient_address": patient_address.address if patient_address else None,
        "attending_postal_code": attending_address.postal_code if attending_address else None,
        "attending_address": attending_address.address if attending_address else None,
        "requester_name": command.requester.name, "requester_phone": command.requester.phone,
        "patient_name": command.patient_name, "patient_birth_date": command.patient_birth_date.isoformat(),
        "attending_name": command.attending_physician_name, "attending_institution": command.attending_institution,
        "question": command.question,
    })
    await conn.execute("INSERT INTO case_personal_data (case_id, sealed) VALUES ($1, $2)", command.case_id, sealed)


async def personal_data(conn: Conn, case_id: UUID) -> dict[str, Any]:
    """The case's personal data, or every field masked once its key was erased."""
    sealed = await conn.fetchval("SELECT sealed FROM case_personal_data WHERE case_id = $1", case_id)
    opened = await CASE_KEYS.open(conn, case_id, sealed) if sealed is not None else None
    return opened if opened is not None else dict.fromkeys(PERSONAL_FIELDS, MASK)


def _address(person: dict[str, Any], postal_code: str, address: str) -> dict[str, Any] | None:
    """A postal address as recorded (None when none was given; *** for both fields once erased)."""
    if person.get(postal_code) is None and person.get(address) is None:
        return None
    return {"postal_code": person.get(postal_code), "address": person.get(address)}


@dataclass(frozen=True)
class CaseQueries:
    pool: asyncpg.Pool

    @retried_read
    async def get(self, case_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM case_view WHERE case_id = $1", case_id)
            if row is None:
                return None
            person = await personal_data(conn, case_id)
        case = case_from_row(row)
        return {
            "case_id": row["case_id"],
            "status": row["status"],
            "mode": row["mode"],
            "department": row["department"],
            "submitted_on": row["submitted_on"],
            "requester": {"relationship": row["requester_relationship"], "name": person["requester_name"],
                          "phone": person["requester_phone"]},
            "patient": {"name": person["patient_name"], "birth_date": person["patient_birth_date"],
                        "is_minor": row["patient_is_minor"],
                        "postal_address": _address(person, "patient_postal_code", "patient_address")},
            "attending_physician": {"name": person["attending_name"],
                                    "institution": person["attending_institution"],
                                    "institution_address": _address(person, "attending_postal_code",
                                                                    "attending_address")},
            "question": person["question"],
            "personal_data_erased_on": row["personal_data_erased_on"],
            "documents": json.loads(row["documents"]),
            "missing_documents": [kind.value for kind in case.missing_documents],
            "consent": {"verified": row["consent_basis"] is not None, "basis": row["consent_basis"]},
            "decline_reasons": json.loads(row["decline_reasons"]),
            "recommendation": row["recommendation"],
            "history": json.loads(row["history"]),
            "version": row["version"],
        }

    @retried_read
    async def received_documents(self, case_id: UUID) -> list[str] | None:
        """The kinds of the documents received for the case, in order (None: no such case)."""
        async with self.pool.acquire() as conn:
            documents = await conn.fetchval("SELECT documents FROM case_view WHERE case_id = $1", case_id)
        return None if documents is None else [document["kind"] for document in json.loads(documents)]

    async def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT case_id, status, mode, department, submitted_on, updated_at, decline_reasons, recommendation
                   FROM case_view WHERE ($1::text IS NULL OR status = $1)
                   ORDER BY submitted_on DESC, updated_at DESC LIMIT $2 OFFSET $3""",
                status, limit, offset,
            )
        return [{**dict(row), "decline_reasons": json.loads(row["decline_reasons"])} for row in rows]
