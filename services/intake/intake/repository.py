"""Intake's write side: the Case stream over eventkit's store, and the personal data sealed beside it."""

from __future__ import annotations

from uuid import UUID

from eventkit.aggregate import AggregateType
from eventkit.crypto import CaseKeys
from eventkit.db import Conn
from eventkit.store import EventTypes
from intake import domain
from intake.commands import SubmitCase
from secondopinion_contracts.events import intake as events

EVENT_TYPES = EventTypes.of(*events.EVENTS, upcasters={("CaseDeclined", 1): events.CaseDeclinedV2.upcast_v1})
STREAM_TYPE = "case"
CASE_KEYS = CaseKeys()
CASES = AggregateType(STREAM_TYPE, domain.Case, domain.evolve)


def case_id_of(stream_id: str) -> UUID:
    return UUID(stream_id.removeprefix(f"{STREAM_TYPE}-"))


async def save_personal_data(conn: Conn, command: SubmitCase) -> None:
    """Names, phone, birth date and the question, sealed with the case's own key (never in events)."""
    sealed = await CASE_KEYS.seal(conn, command.case_id, {
        "requester_name": command.requester.name, "requester_phone": command.requester.phone,
        "patient_name": command.patient_name, "patient_birth_date": command.patient_birth_date.isoformat(),
        "attending_name": command.attending_physician_name, "attending_institution": command.attending_institution,
        "question": command.question,
    })
    await conn.execute("INSERT INTO case_personal_data (case_id, sealed) VALUES ($1, $2)", command.case_id, sealed)
