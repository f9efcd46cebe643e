"""Reporting's write side: the OpinionReport stream over eventkit's store, the lock that orders every writer about
one case, the log of every event reporting received (the source its read models are computed from) and the report
texts kept beside the stream. Handlers reach what is beside the stream through `CaseFiles` (`PostgresCaseFiles` in
the service; reporting.testing.InMemoryCaseFiles in handler tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

import pydantic_core

from eventkit.aggregate import AggregateType
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.store import EventTypes
from eventkit.unit_of_work import UnitOfWork, connection_of
from reporting import domain
from secondopinion_contracts import CloudEvent, EventData
from secondopinion_contracts.events import reporting as reporting_events

SERVICE = "reporting"
EVENT_TYPES = EventTypes.of(*reporting_events.EVENTS, *domain.PRIVATE_EVENTS)
STREAM_TYPE = "report"
REPORTS = AggregateType(STREAM_TYPE, domain.OpinionReport, domain.evolve)
# Advisory-lock namespace (two-key form, apart from eventkit's one-key locks): one case at a time.
CASE_LOCK_NAMESPACE = 0x5EC0_0004


async def lock_case(conn: Conn, case_id: UUID) -> None:
    """Serialize every write about one case (log, board row, report stream) until the transaction ends.

    Without it two replicas logging two events of one case at once would each recompute the board row
    without the other's event, and the last commit would lose one. Every writer takes this lock first,
    so the lock order is always the same and writers never deadlock on the report stream.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", CASE_LOCK_NAMESPACE, str(case_id))


# --- the received-events log ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LoggedEvent:
    event_id: UUID
    case_id: UUID
    source: str
    event_name: str
    event_version: int
    sequence: int
    occurred_at: datetime
    actor_id: str | None
    actor_role: str | None
    causation_id: str | None
    data: dict[str, Any]

    @classmethod
    def from_envelope(cls, envelope: CloudEvent, data: EventData) -> LoggedEvent:
        return cls(event_id=envelope.id, case_id=_case_id_of(data), source=envelope.service,
                   event_name=envelope.event_name, event_version=envelope.event_version, sequence=envelope.sequence,
                   occurred_at=envelope.time, actor_id=envelope.actorid, actor_role=envelope.actorrole,
                   causation_id=envelope.causationid, data=envelope.data)

    @classmethod
    def from_recorded(cls, recorded: RecordedEvent) -> LoggedEvent:
        """One of reporting's own published events, exactly as its envelope will say (eventkit.store.envelope_for)."""
        assert isinstance(recorded.data, EventData)
        actor = recorded.metadata.get("actor") or {}
        return cls(event_id=recorded.event_id, case_id=_case_id_of(recorded.data), source=SERVICE,
                   event_name=recorded.data.NAME, event_version=recorded.data.VERSION, sequence=recorded.version,
                   occurred_at=recorded.recorded_at, actor_id=actor.get("id"), actor_role=actor.get("role"),
                   causation_id=recorded.metadata.get("causation_id"), data=recorded.data.model_dump(mode="json"))


def _case_id_of(data: EventData) -> UUID:
    case_id = getattr(data, "case_id", None)
    if not isinstance(case_id, UUID):
        raise ValueError(f"{data.NAME} carries no case id")
    return case_id


# Takes the lock of every case of the events (`lock_case`), in the order of their ids, before it logs any of them.
_LOG_EVENTS = """
    WITH locked AS MATERIALIZED (
        SELECT pg_advisory_xact_lock($12::int, hashtext(c))
        FROM (SELECT DISTINCT c::text AS c FROM unnest($2::uuid[]) AS u(c) ORDER BY 1) AS cases)
    INSERT INTO received_events (event_id, case_id, source, event_name, event_version, sequence, occurred_at, actor_id,
                                 actor_role, causation_id, data)
    SELECT id, c, s, n, v, q, o, a, r, k, d::jsonb
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], $7::timestamptz[], $8::text[],
                $9::text[], $10::text[], $11::text[]) WITH ORDINALITY AS e(id, c, s, n, v, q, o, a, r, k, d, given)
    WHERE (SELECT count(*) FROM locked) > 0
    ORDER BY given
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id"""


async def log_events(conn: Conn, events: Sequence[LoggedEvent]) -> set[UUID]:
    """Take the lock of each event's case (`lock_case`), then keep the events in the log, all in one statement; the
    ids of those logged now (an event logged before, by its id, is not logged again)."""
    if not events:
        return set()
    columns = (
        [e.event_id for e in events], [e.case_id for e in events], [e.source for e in events],
        [e.event_name for e in events], [e.event_version for e in events], [e.sequence for e in events],
        [e.occurred_at for e in events], [e.actor_id for e in events], [e.actor_role for e in events],
        [e.causation_id for e in events], [pydantic_core.to_json(e.data).decode() for e in events],
    )
    return {row["event_id"] for row in await conn.fetch(_LOG_EVENTS, *columns, CASE_LOCK_NAMESPACE)}


async def case_known(conn: Conn, case_id: UUID) -> bool:
    """Whether any event of the case reached reporting."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM received_events WHERE case_id = $1)", case_id))


async def save_draft(conn: Conn, case_id: UUID, draft_number: int, report_id: UUID, physician_id: str,
                     summary: str) -> None:
    await conn.execute(
        """INSERT INTO report_drafts (case_id, draft_number, report_id, physician_id, summary)
           VALUES ($1, $2, $3, $4, $5)""",
        case_id, draft_number, report_id, physician_id, summary,
    )


async def erase_report_texts(conn: Conn, case_id: UUID, erased_on: date) -> int:
    """Forget the report's text (every draft) of a case whose personal data was erased; ids and history stay."""
    result: str = await conn.execute(
        "UPDATE report_drafts SET summary = NULL, erased_on = $2 WHERE case_id = $1 AND summary IS NOT NULL",
        case_id, erased_on)
    return int(result.split()[-1])


class CaseFiles(Protocol):
    """What the handlers keep about a case beside its report stream, in their unit of work: the case's lock,
    whether it is known, the report's texts. `PostgresCaseFiles` in the service; a fake in tests."""

    async def lock(self, uow: UnitOfWork, case_id: UUID) -> None: ...

    async def known(self, uow: UnitOfWork, case_id: UUID) -> bool: ...

    async def save_draft(self, uow: UnitOfWork, case_id: UUID, draft_number: int, report_id: UUID,
                         physician_id: str, summary: str) -> None: ...

    async def erase_texts(self, uow: UnitOfWork, case_id: UUID, erased_on: date) -> None: ...


class PostgresCaseFiles:
    """CaseFiles in the unit of work's PostgreSQL transaction."""

    async def lock(self, uow: UnitOfWork, case_id: UUID) -> None:
        await lock_case(await connection_of(uow), case_id)

    async def known(self, uow: UnitOfWork, case_id: UUID) -> bool:
        return await case_known(await connection_of(uow), case_id)

    async def save_draft(self, uow: UnitOfWork, case_id: UUID, draft_number: int, report_id: UUID,
                         physician_id: str, summary: str) -> None:
        await save_draft(await connection_of(uow), case_id, draft_number, report_id, physician_id, summary)

    async def erase_texts(self, uow: UnitOfWork, case_id: UUID, erased_on: date) -> None:
        await erase_report_texts(await connection_of(uow), case_id, erased_on)

