"""What the desk reads about cases: the case_view rows, with the personal data opened for the answer only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.crypto import MASK
from eventkit.db import Conn, retried_read
from eventkit.personal_data import PrintedDocument
from intake.projections import case_from_row
from intake.repository import CASE_KEYS

PERSONAL_FIELDS = ("requester_name", "requester_phone", "patient_name", "patient_birth_date", "attending_name",
                   "attending_institution", "question", "patient_postal_code", "patient_address",
                   "attending_postal_code", "attending_address")
# What each printed document shows of them (GET /cases/{id}/personal-data/documents/{document}).
DOCUMENT_FIELDS = {
    "slip": ("patient_name", "patient_postal_code", "patient_address"),
    "report": ("patient_name", "patient_birth_date", "attending_name", "attending_institution",
               "attending_postal_code", "attending_address"),
}


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
    async def for_document(self, case_id: UUID, document: PrintedDocument) -> dict[str, Any] | None:
        """Only the fields one printed document shows, and the kinds of the documents received for the case, in
        order (the slip asks only for what is still missing); None: no such case."""
        async with self.pool.acquire() as conn:
            documents = await conn.fetchval("SELECT documents FROM case_view WHERE case_id = $1", case_id)
            if documents is None:
                return None
            person = await personal_data(conn, case_id)
        return {"received_documents": [received["kind"] for received in json.loads(documents)],
                "fields": {name: person.get(name) for name in DOCUMENT_FIELDS[document]}}

    async def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT case_id, status, mode, department, submitted_on, updated_at, decline_reasons, recommendation
                   FROM case_view WHERE ($1::text IS NULL OR status = $1)
                   ORDER BY submitted_on DESC, updated_at DESC LIMIT $2 OFFSET $3""",
                status, limit, offset,
            )
        return [{**dict(row), "decline_reasons": json.loads(row["decline_reasons"])} for row in rows]
