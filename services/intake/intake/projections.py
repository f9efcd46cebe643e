"""Intake's read model: case_view, one row per case, kept in the transaction of the events it reflects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from eventkit.db import Conn
from eventkit.events import RecordedEvent
from intake import domain
from intake.repository import STREAM_TYPE, case_id_of
from secondopinion_contracts.codes import ConsentBasis, DeclineReason, DocumentKind, Mode, Recommendation, Relationship
from secondopinion_contracts.events import intake as events


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
                              "received_on": data.received_on.isoformat(),
                              "copy_of": str(data.copy_of) if data.copy_of else None})
        erased_on = data.erased_on if isinstance(data, events.PersonalDataErased) else row["personal_data_erased_on"]
        corrections, contacts = json.loads(row["corrections"]), json.loads(row["contacts"])
        by = event.metadata.get("actor", {}).get("id")
        if isinstance(data, events.CaseDetailsCorrected):
            corrections.append({"correction_id": str(data.correction_id), "fields": [f.value for f in data.fields],
                                "reason": data.reason.value, "corrected_on": data.corrected_on.isoformat(),
                                "by": by, "at": event.recorded_at.isoformat()})
        if isinstance(data, events.ContactRecorded):
            contacts.append({"contact_id": str(data.contact_id), "contacted_on": data.contacted_on.isoformat(),
                             "direction": data.direction.value, "channel": data.channel.value,
                             "handled_by": data.handled_by, "at": event.recorded_at.isoformat()})
        await conn.execute(
            """UPDATE case_view SET status = $2, consent_basis = $3, documents = $4::jsonb, decline_reasons = $5::jsonb,
                                    personal_data_erased_on = $10, patient_is_minor = $11,
                                    corrections = $12::jsonb, contacts = $13::jsonb,
                                    history = history || $6::jsonb, version = $7, updated_at = $8, recommendation = $9
               WHERE case_id = $1""",
            case_id, after.status.value, after.consent.value if after.consent else None, json.dumps(documents),
            json.dumps([reason.value for reason in after.reasons]), entry, event.version, event.recorded_at,
            after.recommendation.value if after.recommendation else None, erased_on, after.patient_is_minor,
            json.dumps(corrections), json.dumps(contacts),
        )


def case_from_row(row: asyncpg.Record) -> domain.Case:
    originals: dict[DocumentKind, UUID] = {}
    for document in json.loads(row["documents"]):
        originals.setdefault(DocumentKind(document["kind"]), UUID(document["document_id"]))
    return domain.Case(
        status=domain.CaseStatus(row["status"]),
        mode=Mode(row["mode"]),
        department=row["department"],
        relationship=Relationship(row["requester_relationship"]),
        patient_is_minor=row["patient_is_minor"],
        documents=tuple(DocumentKind(doc["kind"]) for doc in json.loads(row["documents"])),
        originals=tuple(originals.items()),
        consent=ConsentBasis(row["consent_basis"]) if row["consent_basis"] else None,
        reasons=tuple(DeclineReason(reason) for reason in json.loads(row["decline_reasons"])),
        recommendation=Recommendation(row["recommendation"]) if row["recommendation"] else None,
    )


PROJECTIONS = (CaseViewProjection(),)
