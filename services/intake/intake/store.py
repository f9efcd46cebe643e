"""Intake's persistence: the Case repository over eventkit, the case_view projection, personal data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from eventkit.aggregate import AggregateRepository
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.store import EventStore, EventTypes
from secondopinion_contracts.codes import ConsentBasis, DeclineReason, DocumentKind, Mode, Recommendation, Relationship
from secondopinion_contracts.events import intake as events

from intake import domain
from intake.commands import SubmitCase

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
        await conn.execute(
            """UPDATE case_view SET status = $2, consent_basis = $3, documents = $4::jsonb, decline_reasons = $5::jsonb,
                                    history = history || $6::jsonb, version = $7, updated_at = $8, recommendation = $9
               WHERE case_id = $1""",
            case_id, after.status.value, after.consent.value if after.consent else None, json.dumps(documents),
            json.dumps([reason.value for reason in after.reasons]), entry, event.version, event.recorded_at,
            after.recommendation.value if after.recommendation else None,
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


async def save_personal_data(conn: Conn, command: SubmitCase) -> None:
    await conn.execute(
        """INSERT INTO case_personal_data (case_id, requester_name, requester_phone, patient_name, patient_birth_date,
                                           attending_name, attending_institution, question)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        command.case_id, command.requester.name, command.requester.phone, command.patient_name,
        command.patient_birth_date, command.attending_physician_name, command.attending_institution, command.question,
    )


@dataclass(frozen=True)
class CaseQueries:
    pool: asyncpg.Pool

    async def get(self, case_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT v.*, p.requester_name, p.requester_phone, p.patient_name, p.patient_birth_date,
                          p.attending_name, p.attending_institution, p.question
                   FROM case_view v LEFT JOIN case_personal_data p USING (case_id) WHERE v.case_id = $1""",
                case_id,
            )
        if row is None:
            return None
        case = case_from_row(row)
        return {
            "case_id": row["case_id"],
            "status": row["status"],
            "mode": row["mode"],
            "department": row["department"],
            "submitted_on": row["submitted_on"],
            "requester": {"relationship": row["requester_relationship"], "name": row["requester_name"],
                          "phone": row["requester_phone"]},
            "patient": {"name": row["patient_name"], "birth_date": row["patient_birth_date"],
                        "is_minor": row["patient_is_minor"]},
            "attending_physician": {"name": row["attending_name"], "institution": row["attending_institution"]},
            "question": row["question"],
            "documents": json.loads(row["documents"]),
            "missing_documents": [kind.value for kind in case.missing_documents],
            "consent": {"verified": row["consent_basis"] is not None, "basis": row["consent_basis"]},
            "decline_reasons": json.loads(row["decline_reasons"]),
            "recommendation": row["recommendation"],
            "history": json.loads(row["history"]),
            "version": row["version"],
        }

    async def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT case_id, status, mode, department, submitted_on, updated_at, decline_reasons, recommendation
                   FROM case_view WHERE ($1::text IS NULL OR status = $1)
                   ORDER BY submitted_on DESC, updated_at DESC LIMIT $2 OFFSET $3""",
                status, limit, offset,
            )
        return [{**dict(row), "decline_reasons": json.loads(row["decline_reasons"])} for row in rows]
