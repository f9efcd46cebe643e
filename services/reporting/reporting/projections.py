"""Reporting's read models: the log of every event received (ReceivedEventsLog, from the deliveries; OwnEventsLog,
reporting's own events as they are appended), the case board (one row per case, recomputed from that log,
set-based) and the business-day calendar the KPIs count in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from eventkit.consumer import Delivery
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from reporting.business_calendar import calendar_days
from reporting.repository import LoggedEvent, log_events
from secondopinion_contracts import EventData

CALENDAR_LOCK_NAMESPACE = 0x5EC0_0005


class OwnEventsLog:
    """Puts reporting's own published events into the log as they are appended (the copy that comes back
    from the bus is then a duplicate), so the board and timeline show a report command at once."""

    name = "own_events_log"
    tables: tuple[str, ...] = ()  # the log is never truncated: it is the source the read models rebuild from

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        # Private facts stay in the report stream.
        logged = [LoggedEvent.from_recorded(recorded) for recorded in events if isinstance(recorded.data, EventData)]
        newly_logged = await log_events(conn, logged)
        await recompute_cases(conn, [event.case_id for event in logged if event.event_id in newly_logged])


class ReceivedEventsLog:
    """Puts every event reporting receives into the log, and recomputes the board rows of their cases, in the inbox
    transaction and before any of them drives a reaction: all the deliveries handled together (a batch's, or one) in
    one statement each. An event found in the log already (one of reporting's own, logged when it was appended)
    drives nothing."""

    async def apply(self, conn: Conn, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        logged = [LoggedEvent.from_envelope(delivery.envelope, delivery.data) for delivery in deliveries]
        newly_logged = await log_events(conn, logged)
        await recompute_cases(conn, [event.case_id for event in logged if event.event_id in newly_logged])
        return [delivery for delivery, event in zip(deliveries, logged, strict=True)
                if event.event_id in newly_logged]


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
    "last_event_at", "case_number",
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
        min(data->>'case_number') FILTER (WHERE event_name = 'CaseSubmitted') AS case_number,
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
    withdrawal_reason, reschedules, no_shows, consultations, captured_yen, refunded_yen, event_count, last_event_at,
    case_number
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


async def recompute_cases(conn: Conn, case_ids: Sequence[UUID]) -> None:
    """The cases' board rows, from their logged events, in one statement."""
    # Each case's lock is held already (`log_events`): no other transaction writes these rows meanwhile.
    if case_ids:
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


def board_row(row: asyncpg.Record) -> dict[str, Any]:
    return {column: row[column] for column in _BOARD_COLUMNS}
