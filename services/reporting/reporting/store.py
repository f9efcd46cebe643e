"""Reporting's persistence: the OpinionReport repository, the log of every received event, the case board
read model (recomputed per case from that log, set-based), report texts and the business-day calendar."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import pydantic_core

from eventkit import db
from eventkit.aggregate import AggregateRepository
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.store import EventStore, EventTypes
from reporting import domain
from reporting.business_calendar import calendar_days
from secondopinion_contracts import CloudEvent, EventData
from secondopinion_contracts.events import reporting as reporting_events
from secondopinion_contracts.events.reporting import ReportAmended

SERVICE = "reporting"
EVENT_TYPES = EventTypes.of(*reporting_events.EVENTS, *domain.PRIVATE_EVENTS)
STREAM_TYPE = "report"
# Advisory-lock namespace (two-key form, apart from eventkit's one-key locks): one case at a time.
CASE_LOCK_NAMESPACE = 0x5EC0_0004
CALENDAR_LOCK_NAMESPACE = 0x5EC0_0005


def report_repository(store: EventStore) -> AggregateRepository[domain.OpinionReport]:
    return AggregateRepository(store, STREAM_TYPE, domain.OpinionReport, domain.evolve)


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


class OwnEventsLog:
    """Puts reporting's own published events into the log as they are appended (the copy that comes back
    from the bus is then a duplicate), so the board and timeline show a report command at once."""

    name = "own_events_log"
    tables: tuple[str, ...] = ()  # the log is never truncated: it is the source the read models rebuild from

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        # Private facts stay in the report stream.
        logged = [LoggedEvent.from_recorded(recorded) for recorded in events if isinstance(recorded.data, EventData)]
        newly_logged = await log_events(conn, logged)
        for case_id in sorted({event.case_id for event in logged if event.event_id in newly_logged}):
            await recompute_case(conn, case_id)


# --- the case board ------------------------------------------------------------------------------------

# Board row of every case selected (`_CASES_IN_RANGE`: ids in [$1, $2]; `_CASES_LISTED`: ids in $1), from all of
# the case's logged events. Stages follow from which facts exist, not from the order they arrived in; where order
# matters (the latest appointment event, the latest department or mode) it is the events' own order: envelope
# time, then source and stream sequence, then event id, so any delivery order (and any duplicate) gives the same
# row.
_ORDER = "occurred_at DESC, source DESC, sequence DESC, event_id DESC"
_BOARD_COLUMNS = (
    "case_id", "stage", "department", "mode", "submitted_on", "consulted_on", "report_delivered_on", "closed_on",
    "appointment_start", "report_status", "report_drafts", "delivery_channel", "decline_reasons",
    "withdrawal_reason", "reschedules", "no_shows", "consultations", "captured_yen", "refunded_yen", "event_count",
    "last_event_at",
)
_CASES_IN_RANGE = "e.case_id BETWEEN $1 AND $2"
_CASES_LISTED = "e.case_id = ANY($1::uuid[])"
_RECOMPUTE = f"""
WITH stepped AS (
    SELECT e.*,
           -- where several events state a case's department or mode, the later step of the flow wins
           CASE e.event_name
               WHEN 'CaseSubmitted' THEN 1 WHEN 'CaseAccepted' THEN 2 WHEN 'SlotsProposed' THEN 3
               WHEN 'SlotConfirmed' THEN 4 WHEN 'ConsultationCompleted' THEN 5 ELSE 0
           END AS step
    FROM received_events e
    WHERE {{cases}}
),
facts AS (
    SELECT case_id,
        count(*) AS event_count,
        max(occurred_at) AS last_event_at,
        bool_or(event_name = 'CaseSubmitted') AS submitted,
        min((data->>'submitted_on')::date) FILTER (WHERE event_name = 'CaseSubmitted') AS submitted_on,
        bool_or(event_name = 'DocumentReceived') AS any_document,
        bool_or(event_name = 'DocumentReceived' AND data->>'kind' = 'application_form') AS application_form,
        bool_or(event_name = 'DocumentReceived' AND data->>'kind' = 'referral_letter') AS referral_letter,
        bool_or(event_name = 'DocumentReceived' AND data->>'kind' = 'test_results') AS test_results,
        bool_or(event_name = 'ConsentVerified') AS consent_verified,
        bool_or(event_name = 'CaseAccepted') AS accepted,
        bool_or(event_name = 'CaseDeclined') AS declined,
        bool_or(event_name = 'CaseWithdrawn') AS withdrawn,
        bool_or(event_name = 'ConsultationCompleted') AS consulted,
        bool_or(event_name = 'ReportDrafted') AS report_drafted,
        bool_or(event_name = 'ReportFinalized') AS report_finalized,
        bool_or(event_name = 'ReportDelivered') AS report_delivered,
        bool_or(event_name = 'CaseClosed') AS closed,
        (array_agg(event_name ORDER BY {_ORDER}) FILTER (WHERE event_name IN
            ('SlotConfirmed', 'AppointmentRescheduled', 'AppointmentCancelled', 'PatientNoShow')))[1]
            AS last_appointment_event,
        (array_agg((data->>'start')::timestamptz ORDER BY {_ORDER})
            FILTER (WHERE event_name IN ('SlotConfirmed', 'AppointmentRescheduled')))[1] AS appointment_start,
        (array_agg(data->>'department' ORDER BY step DESC, {_ORDER}) FILTER (WHERE step > 0))[1] AS department,
        (array_agg(data->>'mode' ORDER BY step DESC, {_ORDER}) FILTER (WHERE step > 0))[1] AS mode,
        -- v2 states a referral to the general outpatient clinic as a recommendation; v1 mixed it into the
        -- reasons as `refer_to_general_outpatient`: counted under that code either way
        (array_agg(CASE WHEN event_version >= 2 AND data->>'recommendation' = 'general_outpatient'
                        THEN coalesce(data->'reasons', '[]'::jsonb) || '["refer_to_general_outpatient"]'::jsonb
                        ELSE coalesce(data->'reasons', '[]'::jsonb) END
                   ORDER BY {_ORDER}) FILTER (WHERE event_name = 'CaseDeclined'))[1] AS decline_reasons,
        (array_agg(data->>'reason' ORDER BY {_ORDER}) FILTER (WHERE event_name = 'CaseWithdrawn'))[1]
            AS withdrawal_reason,
        min(((data->>'completed_at')::timestamptz AT TIME ZONE 'Asia/Tokyo')::date)
            FILTER (WHERE event_name = 'ConsultationCompleted') AS consulted_on,
        min((data->>'delivered_on')::date) FILTER (WHERE event_name = 'ReportDelivered') AS report_delivered_on,
        (array_agg(data->>'channel' ORDER BY {_ORDER}) FILTER (WHERE event_name = 'ReportDelivered'))[1]
            AS delivery_channel,
        min((data->>'closed_on')::date) FILTER (WHERE event_name = 'CaseClosed') AS closed_on,
        coalesce(max((data->>'draft_number')::int) FILTER (WHERE event_name = 'ReportDrafted'), 0) AS report_drafts,
        count(*) FILTER (WHERE event_name = 'AppointmentRescheduled') AS reschedules,
        count(*) FILTER (WHERE event_name = 'PatientNoShow') AS no_shows,
        count(*) FILTER (WHERE event_name = 'ConsultationCompleted') AS consultations,
        coalesce(sum((data->>'amount')::bigint) FILTER (WHERE event_name = 'PaymentCaptured'), 0) AS captured_yen,
        coalesce(sum((data->>'amount')::bigint) FILTER (WHERE event_name = 'RefundIssued'), 0) AS refunded_yen
    FROM stepped
    GROUP BY case_id
)
INSERT INTO case_board ({", ".join(_BOARD_COLUMNS)})
SELECT case_id,
    CASE
        WHEN closed THEN 'closed'
        WHEN declined THEN 'declined'
        WHEN withdrawn THEN 'withdrawn'
        WHEN report_delivered THEN 'report_delivered'
        WHEN consulted THEN 'consulted'
        WHEN last_appointment_event IN ('SlotConfirmed', 'AppointmentRescheduled') THEN 'confirmed'
        WHEN accepted OR last_appointment_event IS NOT NULL THEN 'scheduling'
        WHEN application_form AND referral_letter AND test_results AND consent_verified THEN 'screening'
        WHEN any_document THEN 'awaiting_documents'
        WHEN submitted THEN 'submitted'
        ELSE 'unknown'  -- only events that follow the submission have arrived so far
    END,
    department, mode, submitted_on, consulted_on, report_delivered_on, closed_on, appointment_start,
    CASE WHEN report_delivered THEN 'delivered' WHEN report_finalized THEN 'finalized'
         WHEN report_drafted THEN 'drafted' END,
    report_drafts, delivery_channel,
    coalesce(ARRAY(SELECT jsonb_array_elements_text(decline_reasons)), '{{}}'::text[]),
    withdrawal_reason, reschedules, no_shows, consultations, captured_yen, refunded_yen, event_count, last_event_at
FROM facts
ON CONFLICT (case_id) DO UPDATE SET
    {", ".join(f"{column} = EXCLUDED.{column}" for column in _BOARD_COLUMNS[1:])}
"""

RECOMPUTE_CASES = _RECOMPUTE.replace("{cases}", _CASES_IN_RANGE)
RECOMPUTE_LISTED_CASES = _RECOMPUTE.replace("{cases}", _CASES_LISTED)

STAGES = ("submitted", "awaiting_documents", "screening", "scheduling", "confirmed", "consulted", "report_delivered",
          "closed", "declined", "withdrawn", "unknown")
# The board's columns (declined and withdrawn share one: both are cases that ended without an opinion).
BOARD_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("submitted", ("submitted",)),
    ("awaiting_documents", ("awaiting_documents",)),
    ("screening", ("screening",)),
    ("scheduling", ("scheduling",)),
    ("confirmed", ("confirmed",)),
    ("consulted", ("consulted",)),
    ("report_delivered", ("report_delivered",)),
    ("closed", ("closed",)),
    ("declined_withdrawn", ("declined", "withdrawn")),
)


async def recompute_case(conn: Conn, case_id: UUID) -> None:
    """The case's board row, from its logged events, as the transaction ends: once for all the cases its steps
    touched (a consumer's batch of deliveries, each of another case), in one statement; at once where the
    transaction was not opened by `eventkit.db.transaction`."""
    if not db.before_commit(conn, _recompute_cases, case_id):
        await _recompute_cases(conn, [case_id])


async def _recompute_cases(conn: Conn, case_ids: list[UUID]) -> None:
    # Each case's lock is held already (`log_events`): no other transaction writes these rows meanwhile.
    await conn.execute(RECOMPUTE_LISTED_CASES, sorted(set(case_ids)))


Progress = Callable[[int, int], None]


async def rebuild_case_board(pool: asyncpg.Pool, progress: Progress | None = None,
                             batch_events: int = 50_000) -> int:
    """Drop the board and recompute every case from the log, in case-id ranges of about `batch_events`
    events (each range one set-based statement). One transaction: readers see the old board until the
    new one is complete, and the log is locked against writers so no event slips in between."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE received_events IN SHARE MODE")
        total = int(await conn.fetchval("SELECT count(*) FROM received_events"))
        await conn.execute("TRUNCATE case_board")
        per_case = await conn.fetch("SELECT case_id, count(*) AS n FROM received_events GROUP BY case_id ORDER BY 1")
        done = 0
        start = 0
        while start < len(per_case):
            end, size = start, 0
            while end < len(per_case) and (size == 0 or size + per_case[end]["n"] <= batch_events):
                size += per_case[end]["n"]
                end += 1
            await conn.execute(RECOMPUTE_CASES, per_case[start]["case_id"], per_case[end - 1]["case_id"])
            done += size
            start = end
            if progress:
                progress(done, total)
        if progress and total == 0:
            progress(0, 0)
        return done


# --- report texts ----------------------------------------------------------------------------------------

async def save_draft(conn: Conn, case_id: UUID, draft_number: int, report_id: UUID, physician_id: str,
                     summary: str) -> None:
    await conn.execute(
        """INSERT INTO report_drafts (case_id, draft_number, report_id, physician_id, summary)
           VALUES ($1, $2, $3, $4, $5)""",
        case_id, draft_number, report_id, physician_id, summary,
    )


async def save_amendment(conn: Conn, case_id: UUID, amended: ReportAmended, summary: str, note: str) -> None:
    await conn.execute(
        """INSERT INTO report_versions (case_id, version, report_id, physician_id, reason, summary, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        case_id, amended.report_version, amended.report_id, amended.physician_id, amended.reason.value, summary, note,
    )


async def erase_report_texts(conn: Conn, case_id: UUID, erased_on: date) -> int:
    """Forget the report's text (every draft and amendment) of a case whose personal data was erased; ids and
    history stay."""
    drafts: str = await conn.execute(
        "UPDATE report_drafts SET summary = NULL, erased_on = $2 WHERE case_id = $1 AND summary IS NOT NULL",
        case_id, erased_on)
    amendments: str = await conn.execute(
        """UPDATE report_versions SET summary = NULL, note = NULL, erased_on = $2
           WHERE case_id = $1 AND summary IS NOT NULL""",
        case_id, erased_on)
    return int(drafts.split()[-1]) + int(amendments.split()[-1])


# --- business-day calendar ---------------------------------------------------------------------------------

async def sync_business_calendar(conn: Conn, first: date, last: date) -> bool:
    """Make the stored calendar exactly the computed one; True when it had to be (re)written."""
    days = list(calendar_days(first, last))
    wanted = (len(days), days[0].day, days[-1].day, sum(day.ordinal for day in days))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::int, 0)", CALENDAR_LOCK_NAMESPACE)
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(day) AS first, max(day) AS last, sum(ordinal) AS total FROM business_calendar")
        assert row is not None
        if (row["n"], row["first"], row["last"], row["total"]) == wanted:
            return False
        await conn.execute("DELETE FROM business_calendar")
        await conn.copy_records_to_table("business_calendar", columns=("day", "business_day", "ordinal"),
                                         records=[(day.day, day.business_day, day.ordinal) for day in days])
    return True


# --- queries ---------------------------------------------------------------------------------------------

def _board_row(row: asyncpg.Record) -> dict[str, Any]:
    return {column: row[column] for column in _BOARD_COLUMNS}


@dataclass(frozen=True)
class ReportingQueries:
    pool: asyncpg.Pool

    async def case_known(self, case_id: UUID, conn: Conn | None = None) -> bool:
        query = "SELECT EXISTS (SELECT 1 FROM received_events WHERE case_id = $1)"
        if conn is not None:
            return bool(await conn.fetchval(query, case_id))
        async with self.pool.acquire() as acquired:
            return bool(await acquired.fetchval(query, case_id))

    async def versions(self, case_id: UUID) -> list[dict[str, Any]]:
        """Every version of the final report, oldest first: 1 is the last draft as finalized, then each
        amendment with who, when and why."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """(SELECT 1 AS version, physician_id, NULL AS reason, NULL AS note, summary, drafted_at AS at,
                           erased_on
                    FROM report_drafts WHERE case_id = $1 ORDER BY draft_number DESC LIMIT 1)
                   UNION ALL
                   (SELECT version, physician_id, reason, note, summary, amended_at AS at, erased_on
                    FROM report_versions WHERE case_id = $1)
                   ORDER BY version""",
                case_id)
        return [dict(row) for row in rows]

    async def latest_draft(self, case_id: UUID) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(
                "SELECT * FROM report_drafts WHERE case_id = $1 ORDER BY draft_number DESC LIMIT 1", case_id)
            return row

    async def case(self, case_id: UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM case_board WHERE case_id = $1", case_id)
        return _board_row(row) if row else None

    async def timeline(self, case_id: UUID) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT event_id, source, event_name, event_version, sequence, occurred_at, actor_id, actor_role,
                          causation_id, data
                   FROM received_events WHERE case_id = $1
                   ORDER BY occurred_at, source, sequence, event_id""",
                case_id,
            )
        return [{
            "at": row["occurred_at"], "service": row["source"], "event": row["event_name"],
            "version": row["event_version"], "sequence": row["sequence"], "event_id": row["event_id"],
            "actor": {"id": row["actor_id"], "role": row["actor_role"]}, "causation_id": row["causation_id"],
            "data": {key: value for key, value in json.loads(row["data"]).items() if key != "case_id"},
        } for row in rows]

    async def board(self, per_column: int) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            # How many events the log holds, not its highest position: positions are taken when a transaction
            # inserts and become visible when it commits, so an event committed after a later one would land
            # below max(position) and leave the revision (and the dashboard) unchanged.
            revision = await conn.fetchval("SELECT count(*) FROM received_events")
            rows = await conn.fetch(
                """SELECT * FROM (
                       SELECT b.*, row_number() OVER (PARTITION BY stage ORDER BY last_event_at DESC, case_id) AS rank
                       FROM case_board b) ranked
                   WHERE rank <= $1 ORDER BY last_event_at DESC, case_id""",
                per_column,
            )
            counts = {row["stage"]: row["n"] for row in await conn.fetch(
                "SELECT stage, count(*) AS n FROM case_board GROUP BY stage")}
        columns = []
        for column, stages in BOARD_COLUMNS:
            cards = [_board_row(row) for row in rows if row["stage"] in stages]
            columns.append({"column": column, "stages": list(stages), "total": sum(counts.get(s, 0) for s in stages),
                            "cards": cards[:per_column]})
        return {"revision": revision, "columns": columns}

    async def kpis(self, first: date | None, last: date | None) -> dict[str, Any]:
        cohort = """WITH cohort AS (
                        SELECT * FROM case_board
                        WHERE ($1::date IS NULL OR submitted_on >= $1) AND ($2::date IS NULL OR submitted_on <= $2))"""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            groups = await conn.fetch(
                f"""{cohort} SELECT stage, coalesce(department, 'unknown') AS department,
                                    coalesce(mode, 'unknown') AS mode, count(*) AS n
                    FROM cohort GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", first, last)
            declines = await conn.fetch(
                f"""{cohort} SELECT reason, count(*) AS n FROM cohort, unnest(decline_reasons) AS reason
                    GROUP BY reason ORDER BY n DESC, reason""", first, last)
            durations = await conn.fetch(
                f"""{cohort}, spans AS (
                        SELECT 'submission_to_consultation' AS span, consulted.ordinal - submitted.ordinal AS days
                        FROM cohort
                        JOIN business_calendar submitted ON submitted.day = cohort.submitted_on
                        JOIN business_calendar consulted ON consulted.day = cohort.consulted_on
                        UNION ALL
                        SELECT 'submission_to_report_delivery', delivered.ordinal - submitted.ordinal
                        FROM cohort
                        JOIN business_calendar submitted ON submitted.day = cohort.submitted_on
                        JOIN business_calendar delivered ON delivered.day = cohort.report_delivered_on)
                    SELECT span, count(*) AS n,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median,
                           percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90
                    FROM spans GROUP BY span""", first, last)
            totals = await conn.fetchrow(
                f"""{cohort} SELECT count(*) AS cases, coalesce(sum(no_shows), 0)::bigint AS no_shows,
                                    coalesce(sum(consultations), 0)::bigint AS consultations,
                                    coalesce(sum(captured_yen), 0)::bigint AS captured,
                                    coalesce(sum(refunded_yen), 0)::bigint AS refunded
                    FROM cohort""", first, last)
        assert totals is not None
        by_stage = dict.fromkeys(STAGES[:-1], 0)
        by_department: dict[str, int] = {}
        by_mode: dict[str, int] = {}
        for row in groups:
            by_stage[row["stage"]] = by_stage.get(row["stage"], 0) + row["n"]
            by_department[row["department"]] = by_department.get(row["department"], 0) + row["n"]
            by_mode[row["mode"]] = by_mode.get(row["mode"], 0) + row["n"]
        spans = {row["span"]: row for row in durations}
        outcomes = totals["no_shows"] + totals["consultations"]
        return {
            "period": {"from": first, "to": last, "basis": "cases submitted in the period (Asia/Tokyo dates)"},
            "cases": {
                "total": totals["cases"],
                "by_stage": by_stage,
                "by_department": dict(sorted(by_department.items(), key=lambda item: (-item[1], item[0]))),
                "by_mode": by_mode,
                "by_stage_department_mode": [dict(row) for row in groups],
            },
            "declines_by_reason": {row["reason"]: row["n"] for row in declines},
            "business_days": {
                span: {"cases": spans[span]["n"] if span in spans else 0,
                       "median": spans[span]["median"] if span in spans else None,
                       "p90": spans[span]["p90"] if span in spans else None}
                for span in ("submission_to_consultation", "submission_to_report_delivery")
            },
            "no_shows": {"no_shows": totals["no_shows"], "consultations": totals["consultations"],
                         "rate": totals["no_shows"] / outcomes if outcomes else None},
            "fees": {"captured_yen": totals["captured"], "refunded_yen": totals["refunded"],
                     "net_yen": totals["captured"] - totals["refunded"]},
        }
