"""Intake's write side: the Case stream over eventkit's store, and the personal data sealed beside it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from eventkit.aggregate import AggregateType
from eventkit.crypto import CaseKeys, to_text
from eventkit.db import Conn
from eventkit.store import EventTypes
from eventkit.unit_of_work import UnitOfWork, connection_of
from intake import domain
from intake.commands import CorrectCaseDetails, RecordContact, SubmitCase
from intake.search import BlindIndex, case_number
from secondopinion_contracts.codes import CorrectedField
from secondopinion_contracts.events import intake as events

EVENT_TYPES = EventTypes.of(*events.EVENTS, upcasters={("CaseDeclined", 1): events.CaseDeclinedV2.upcast_v1})
STREAM_TYPE = "case"
CASE_KEYS = CaseKeys()
CASES = AggregateType(STREAM_TYPE, domain.Case, domain.evolve)


def case_id_of(stream_id: str) -> UUID:
    return UUID(stream_id.removeprefix(f"{STREAM_TYPE}-"))


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
        "patient_name_kana": command.patient_name_kana,
        "attending_name": command.attending_physician_name, "attending_institution": command.attending_institution,
        "question": command.question,
    })
    await conn.execute("INSERT INTO case_personal_data (case_id, sealed) VALUES ($1, $2)", command.case_id, sealed)


class PersonalData(Protocol):
    """A case's personal data beside its stream, in the handler's unit of work: sealed with the case's own key
    (never in events), and unreadable for good once that key is erased. `PostgresPersonalData` in the service; a
    fake in handler tests (intake.testing.InMemoryPersonalData)."""

    async def keep(self, uow: UnitOfWork, command: SubmitCase) -> str:
        """Seals and keeps the submission's personal data; returns the payer's name sealed for billing's receipts."""
        ...

    async def erase(self, uow: UnitOfWork, case_id: UUID, erased_by: str, erased_at: datetime) -> None:
        """Destroys the case's key."""
        ...

    async def changed(self, uow: UnitOfWork, case_id: UUID,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> list[CorrectedField]:
        """Which of the corrected details differ from the sealed values (domain.personal_corrections gives them)."""
        ...

    async def correct(self, uow: UnitOfWork, command: CorrectCaseDetails,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> None:
        """Seals the corrected values in place of the old ones, and the correction's note (if any) beside them."""
        ...

    async def keep_contact(self, uow: UnitOfWork, command: RecordContact) -> None:
        """Seals the contact's note."""
        ...


@dataclass
class ReindexCount:
    """What a re-index did: the cases indexed from their sealed data, and the erased ones left out."""

    indexed: int = 0
    erased: int = 0


class PostgresPersonalData:
    """The sealed row and, beside it, the case's rows in the blind index it is searched by (`case_search_index`):
    kept together, and erased together with the key, in the handler's transaction."""

    def __init__(self, index: BlindIndex) -> None:
        self.index = index

    async def keep(self, uow: UnitOfWork, command: SubmitCase) -> str:
        conn = await connection_of(uow)
        payer = await CASE_KEYS.seal(conn, command.case_id, {"payer_name": command.requester.name})
        await save_personal_data(conn, command)
        await self._index(conn, command.case_id, {
            "patient_name": command.patient_name, "patient_name_kana": command.patient_name_kana,
            "patient_birth_date": command.patient_birth_date.isoformat(), "requester_phone": command.requester.phone})
        return to_text(payer)

    async def erase(self, uow: UnitOfWork, case_id: UUID, erased_by: str, erased_at: datetime) -> None:
        conn = await connection_of(uow)
        await CASE_KEYS.erase(conn, case_id, erased_by, erased_at)
        await conn.execute("DELETE FROM case_search_index WHERE case_id = $1", case_id)

    async def _index(self, conn: Conn, case_id: UUID, person: Mapping[str, Any]) -> None:
        """The case's rows in the blind index, from its personal data as it stands."""
        born = person.get("patient_birth_date")
        entries = self.index.entries(names=(person.get("patient_name"), person.get("patient_name_kana")),
                                     birth_date=date.fromisoformat(born) if born else None,
                                     phone=person.get("requester_phone"))
        await conn.execute("DELETE FROM case_search_index WHERE case_id = $1", case_id)
        await conn.executemany(
            "INSERT INTO case_search_index (kind, digest, case_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(kind, digest, case_id) for kind, digest in entries])

    async def reindex(self, pool: asyncpg.Pool, progress: Callable[[int, int], None] | None = None) -> ReindexCount:
        """Every case's rows in the blind index again, from its sealed data, under the index's key as it is now: the
        cases submitted before there was an index, and all of them after INTAKE_SEARCH_INDEX_KEY changed. One case
        per transaction, its row locked as a correction locks it; an erased case keeps no row. Safe to run again."""
        rows = await pool.fetch("SELECT case_id FROM case_personal_data ORDER BY case_id")
        case_ids = [row["case_id"] for row in rows]
        count = ReindexCount()
        for done, case_id in enumerate(case_ids, start=1):
            async with pool.acquire() as conn, conn.transaction():
                person = await self._opened(conn, case_id)
                if person is None:
                    await conn.execute("DELETE FROM case_search_index WHERE case_id = $1", case_id)
                    count.erased += 1
                else:
                    await self._index(conn, case_id, person)
                    count.indexed += 1
            if progress is not None:
                progress(done, len(case_ids))
        return count

    async def _opened(self, conn: Conn, case_id: UUID) -> dict[str, Any] | None:
        sealed = await conn.fetchval("SELECT sealed FROM case_personal_data WHERE case_id = $1 FOR UPDATE", case_id)
        return None if sealed is None else await CASE_KEYS.open(conn, case_id, sealed)

    async def changed(self, uow: UnitOfWork, case_id: UUID,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> list[CorrectedField]:
        person = await self._opened(await connection_of(uow), case_id)
        if person is None:
            return []  # erased (the domain refuses): nothing is compared with what cannot be read
        return [name for name, values in corrections.items()
                if any(person.get(key) != value for key, value in values.items())]

    async def correct(self, uow: UnitOfWork, command: CorrectCaseDetails,
                      corrections: Mapping[CorrectedField, Mapping[str, Any]]) -> None:
        conn = await connection_of(uow)
        person = await self._opened(conn, command.case_id)
        assert person is not None, "the domain refuses a correction once the case is erased"
        for values in corrections.values():
            person.update(values)
        await conn.execute("UPDATE case_personal_data SET sealed = $2 WHERE case_id = $1", command.case_id,
                           await CASE_KEYS.seal(conn, command.case_id, person))
        # The case is found by what it says now: its rows in the blind index follow the corrected values.
        await self._index(conn, command.case_id, person)
        if command.note:
            await _keep_note(conn, command.case_id, command.correction_id, "correction", command.note)

    async def keep_contact(self, uow: UnitOfWork, command: RecordContact) -> None:
        await _keep_note(await connection_of(uow), command.case_id, command.contact_id, "contact", command.note)


class CaseNumbers(Protocol):
    """The case numbers read over the phone (SO-2026-00123), one per case, in the order of submission within each
    year (Asia/Tokyo), in the handler's unit of work: a submission rolled back takes its number back with it, so
    none is skipped or given twice. `PostgresCaseNumbers` in the service; a fake in handler tests."""

    async def assign(self, uow: UnitOfWork, case_id: UUID, submitted_on: date) -> str:
        """The case's number, the next of `submitted_on`'s year."""
        ...


class PostgresCaseNumbers:
    """A counter row per year (`case_number_counters`), taken with a row lock held until the submission commits:
    concurrent submissions of one year are numbered one after the other. `case_numbers` keeps each case's number;
    its unique keys are the last guard against a number given twice."""

    async def assign(self, uow: UnitOfWork, case_id: UUID, submitted_on: date) -> str:
        conn = await connection_of(uow)
        sequence: int = await conn.fetchval(
            """INSERT INTO case_number_counters (year, last) VALUES ($1, 1)
               ON CONFLICT (year) DO UPDATE SET last = case_number_counters.last + 1 RETURNING last""",
            submitted_on.year)
        number = case_number(submitted_on.year, sequence)
        await conn.execute("INSERT INTO case_numbers (case_id, number, year, sequence) VALUES ($1, $2, $3, $4)",
                           case_id, number, submitted_on.year, sequence)
        return number

async def _keep_note(conn: Conn, case_id: UUID, note_id: UUID, kind: str, note: str) -> None:
    await conn.execute("INSERT INTO case_notes (note_id, case_id, kind, sealed) VALUES ($1, $2, $3, $4)",
                       note_id, case_id, kind, await CASE_KEYS.seal(conn, case_id, {"note": note}))


class ErasureRequests(Protocol):
    """The erasures waiting for a second privacy officer (table `erasure_requests`, one row per case), in the
    handler's unit of work. `PostgresErasureRequests` in the service; a fake in handler tests."""

    async def add(self, uow: UnitOfWork, case_id: UUID, requested_by: str, requested_on: date) -> bool:
        """Keeps the request; False if one for the case is already waiting."""
        ...

    async def requester(self, uow: UnitOfWork, case_id: UUID) -> str | None:
        """Who requested the waiting erasure (locked until the unit of work ends); None without one."""
        ...

    async def remove(self, uow: UnitOfWork, case_id: UUID) -> None:
        ...


class PostgresErasureRequests:
    async def add(self, uow: UnitOfWork, case_id: UUID, requested_by: str, requested_on: date) -> bool:
        inserted = await (await connection_of(uow)).fetchval(
            """INSERT INTO erasure_requests (case_id, requested_by, requested_on) VALUES ($1, $2, $3)
               ON CONFLICT (case_id) DO NOTHING RETURNING case_id""",
            case_id, requested_by, requested_on)
        return inserted is not None

    async def requester(self, uow: UnitOfWork, case_id: UUID) -> str | None:
        requested_by: str | None = await (await connection_of(uow)).fetchval(
            "SELECT requested_by FROM erasure_requests WHERE case_id = $1 FOR UPDATE", case_id)
        return requested_by

    async def remove(self, uow: UnitOfWork, case_id: UUID) -> None:
        await (await connection_of(uow)).execute("DELETE FROM erasure_requests WHERE case_id = $1", case_id)
