"""What the desk reads about cases: the case_view rows, with the personal data opened for the answer only."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.crypto import MASK, open_with
from eventkit.db import Conn, retried_read
from intake.domain import CaseStatus
from intake.projections import case_from_row
from intake.repository import CASE_KEYS

PERSONAL_FIELDS = ("requester_name", "requester_phone", "patient_name", "patient_birth_date", "attending_name",
                   "attending_institution", "question", "patient_postal_code", "patient_address",
                   "attending_postal_code", "attending_address", "patient_name_kana")

async def personal_data(conn: Conn, case_id: UUID) -> dict[str, Any]:
    """The case's personal data, or every field masked once its key was erased."""
    sealed = await conn.fetchval("SELECT sealed FROM case_personal_data WHERE case_id = $1", case_id)
    opened = await CASE_KEYS.open(conn, case_id, sealed) if sealed is not None else None
    return opened if opened is not None else dict.fromkeys(PERSONAL_FIELDS, MASK)


async def notes(conn: Conn, case_id: UUID, kind: str) -> dict[str, str]:
    """The case's sealed notes of a kind (`correction`, `contact`) by their id, opened; *** once the key is erased."""
    rows = await conn.fetch("SELECT note_id, sealed FROM case_notes WHERE case_id = $1 AND kind = $2", case_id, kind)
    key = await CASE_KEYS.key(conn, case_id) if rows else None
    return {str(row["note_id"]): open_with(key, case_id, row["sealed"])["note"] if key else MASK for row in rows}


async def case_status(conn: Conn, case_id: UUID) -> str | None:
    status: str | None = await conn.fetchval("SELECT status FROM case_view WHERE case_id = $1", case_id)
    return status


async def number_of_case(conn: Conn, case_id: UUID) -> str | None:
    """The case's number (SO-2026-00123): not personal data, what staff and patients call the case by."""
    number: str | None = await conn.fetchval("SELECT number FROM case_numbers WHERE case_id = $1", case_id)
    return number


async def received_documents(conn: Conn, case_id: UUID) -> list[str]:
    """The kinds of the documents received for the case, in order (the slip asks only for what is missing)."""
    documents = await conn.fetchval("SELECT documents FROM case_view WHERE case_id = $1", case_id)
    return [received["kind"] for received in json.loads(documents)] if documents is not None else []


@dataclass(frozen=True)
class CaseFilters:
    status: tuple[str, ...] = ()  # any of these; none given: every status
    department: str | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None
    sort: str = "newest"  # or "oldest": the longest-waiting first


@dataclass(frozen=True)
class CaseCursor:
    """Where a page of the case list ended: opaque to the desk (base64url of the sort and the last row's key)."""

    sort: str
    submitted_on: date
    case_id: UUID

    def encode(self) -> str:
        text = f"{self.sort}|{self.submitted_on.isoformat()}|{self.case_id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> CaseCursor:
        """Raises ValueError for anything that is not a cursor this list gave."""
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            sort, submitted_on, case_id = text.split("|")
            if sort not in ("newest", "oldest"):
                raise ValueError(sort)
            return cls(sort, date.fromisoformat(submitted_on), UUID(case_id))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError("not a cursor of this list: pass `next_cursor` from the previous page as it was") \
                from error


def _address(person: dict[str, Any], postal_code: str, address: str) -> dict[str, Any] | None:
    """A postal address as recorded (None when none was given; *** for both fields once erased)."""
    if person.get(postal_code) is None and person.get(address) is None:
        return None
    return {"postal_code": person.get(postal_code), "address": person.get(address)}


Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class CaseQueries:
    pool: asyncpg.Pool

    @retried_read
    async def get(self, case_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT v.*, n.number AS case_number FROM case_view v LEFT JOIN case_numbers n USING (case_id)"
                " WHERE v.case_id = $1", case_id)
            if row is None:
                return None
            person = await personal_data(conn, case_id)
            correction_notes = await notes(conn, case_id, "correction")
        case = case_from_row(row)
        return {
            "case_id": row["case_id"],
            "case_number": row["case_number"],
            "status": row["status"],
            "mode": row["mode"],
            "department": row["department"],
            "submitted_on": row["submitted_on"],
            "requester": {"relationship": row["requester_relationship"], "name": person["requester_name"],
                          "phone": person["requester_phone"]},
            "patient": {"name": person["patient_name"], "name_kana": person.get("patient_name_kana"),
                        "birth_date": person["patient_birth_date"],
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
            "corrections": [{**correction, "note": correction_notes.get(correction["correction_id"])}
                            for correction in json.loads(row["corrections"])],
            "history": json.loads(row["history"]),
            "version": row["version"],
        }

    @retried_read
    async def contacts(self, case_id: UUID) -> list[dict[str, Any]] | None:
        """The case's contact log, oldest contact first (then as recorded), each with its note opened (*** once
        erased); None: no such case."""
        async with self.pool.acquire() as conn:
            logged = await conn.fetchval("SELECT contacts FROM case_view WHERE case_id = $1", case_id)
            if logged is None:
                return None
            opened = await notes(conn, case_id, "contact")
        entries = [{**entry, "note": opened.get(entry["contact_id"])} for entry in json.loads(logged)]
        return sorted(entries, key=lambda entry: entry["contacted_on"])  # stable: same day keeps the log's order

    async def department(self, case_id: UUID) -> str | None:
        """The case's department (None: no such case), without opening its personal data."""
        async with self.pool.acquire() as conn:
            department: str | None = await conn.fetchval(
                "SELECT department FROM case_view WHERE case_id = $1", case_id)
        return department

    async def list(self, filters: CaseFilters, limit: int, offset: int = 0,
                   after: CaseCursor | None = None) -> tuple[list[dict[str, Any]], CaseCursor | None]:
        """One page of cases, newest or oldest submission first (ties by case id, so pages never overlap), and
        the cursor of the next page if there is one."""
        newer_first = filters.sort == "newest"
        beyond, direction = ("<", "DESC") if newer_first else (">", "ASC")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT case_id, n.number AS case_number, status, mode, department, submitted_on, updated_at,
                           decline_reasons, recommendation
                    FROM case_view LEFT JOIN case_numbers n USING (case_id)
                    WHERE (cardinality($1::text[]) = 0 OR status = ANY($1::text[]))
                      AND ($2::text IS NULL OR department = $2)
                      AND ($3::date IS NULL OR submitted_on >= $3) AND ($4::date IS NULL OR submitted_on <= $4)
                      AND ($5::date IS NULL OR (submitted_on, case_id) {beyond} ($5, $6::uuid))
                    ORDER BY submitted_on {direction}, case_id {direction} LIMIT $7 OFFSET $8""",
                list(filters.status), filters.department, filters.submitted_from, filters.submitted_to,
                after.submitted_on if after else None, after.case_id if after else None, limit + 1, offset,
            )
        page = [{**dict(row), "decline_reasons": json.loads(row["decline_reasons"])} for row in rows[:limit]]
        last = page[-1] if len(rows) > limit else None
        return page, CaseCursor(filters.sort, last["submitted_on"], last["case_id"]) if last else None

    @retried_read
    async def erasure(self, case_id: UUID, stream_id: str) -> dict[str, Any] | None:
        """Where the erasure of the case's personal data stands, without opening it: the case's number, status and
        dates, when its stream was last written to, and the request waiting for a second officer (if any)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT v.case_id, n.number AS case_number, v.status, v.department, v.submitted_on,
                          v.personal_data_erased_on,
                          (SELECT max(recorded_at) FROM events WHERE stream_id = $2) AS last_activity_at,
                          r.requested_by, r.requested_on, r.requested_at
                   FROM case_view v LEFT JOIN case_numbers n USING (case_id)
                   LEFT JOIN erasure_requests r USING (case_id)
                   WHERE v.case_id = $1""", case_id, stream_id)
        return dict(row) if row is not None else None

    @retried_read
    async def erasure_requests(self, limit: int, offset: int) -> Rows:
        """The erasures waiting for a second privacy officer, the longest waiting first (ids and numbers only)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT r.case_id, n.number AS case_number, r.requested_by, r.requested_on, r.requested_at
                   FROM erasure_requests r LEFT JOIN case_numbers n USING (case_id)
                   ORDER BY r.requested_at, r.case_id LIMIT $1 OFFSET $2""", limit, offset)
        return [dict(row) for row in rows]

    @retried_read
    async def names_for_counter(self, conn: Conn, case_ids: Sequence[UUID]) -> Rows:
        """The accepted cases among `case_ids` with the names the cashier calls the people at the counter by (the
        patient's, kanji and kana, and who asked), *** once erased; the other cases are left out."""
        rows = await conn.fetch(
            """SELECT v.case_id, n.number AS case_number, v.mode, v.department, v.requester_relationship,
                      v.personal_data_erased_on
               FROM case_view v LEFT JOIN case_numbers n USING (case_id)
               WHERE v.case_id = ANY($1::uuid[]) AND v.status = $2 ORDER BY v.case_id""",
            list(case_ids), CaseStatus.ACCEPTED.value)
        named = []
        for row in rows:
            person = await personal_data(conn, row["case_id"])
            named.append({"case_id": row["case_id"], "case_number": row["case_number"], "mode": row["mode"],
                          "department": row["department"],
                          "patient": {"name": person["patient_name"], "name_kana": person.get("patient_name_kana")},
                          "requester": {"relationship": row["requester_relationship"],
                                        "name": person["requester_name"]},
                          "personal_data_erased_on": row["personal_data_erased_on"]})
        return named

    async def search(self, case_number: str | None, digests: Sequence[tuple[str, bytes]],
                     limit: int) -> Rows:
        """The cases with this number (if given) and every kind of `digests` among their blind index rows (a case
        found by name matches one of its names, kanji or kana), newest first; no personal data. An erased case has
        no index rows left: it is found by its number only."""
        kinds = sorted({kind for kind, _ in digests})
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT v.case_id, n.number AS case_number, v.status, v.mode, v.department, v.submitted_on,
                          v.personal_data_erased_on
                   FROM case_view v LEFT JOIN case_numbers n USING (case_id)
                   WHERE ($1::text IS NULL OR n.number = $1)
                     AND ($2::int = 0 OR v.case_id IN (
                         SELECT case_id FROM case_search_index
                         WHERE (kind, digest) IN (SELECT * FROM unnest($3::text[], $4::bytea[]))
                         GROUP BY case_id HAVING count(DISTINCT kind) = $2))
                   ORDER BY v.submitted_on DESC, v.case_id DESC LIMIT $5""",
                case_number, len(kinds), [kind for kind, _ in digests], [digest for _, digest in digests], limit)
        return [dict(row) for row in rows]
