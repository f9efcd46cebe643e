"""What the desk, the physicians and the auditors read from reporting: report drafts, case timelines, the case
board and the KPIs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from reporting.projections import BOARD_COLUMNS, STAGES, board_row


@dataclass(frozen=True)
class ReportingQueries:
    pool: asyncpg.Pool

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
        return board_row(row) if row else None

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

    async def board(self, per_column: int, department: str | None = None,
                    submitted_to: date | None = None) -> dict[str, Any]:
        def narrowed(first: int) -> str:  # the filters, as parameters $first and $first + 1
            return (f"(${first}::text IS NULL OR department = ${first}) AND "
                    f"(${first + 1}::date IS NULL OR submitted_on <= ${first + 1})")

        async with self.pool.acquire() as conn:
            # How many events the log holds, not its highest position: positions are taken when a transaction
            # inserts and become visible when it commits, so an event committed after a later one would land
            # below max(position) and leave the revision (and the dashboard) unchanged.
            revision = await conn.fetchval("SELECT count(*) FROM received_events")
            rows = await conn.fetch(
                f"""SELECT * FROM (
                       SELECT b.*, row_number() OVER (PARTITION BY stage ORDER BY last_event_at DESC, case_id) AS rank
                       FROM case_board b WHERE {narrowed(2)}) ranked
                   WHERE rank <= $1 ORDER BY last_event_at DESC, case_id""",
                per_column, department, submitted_to,
            )
            counts = {row["stage"]: row["n"] for row in await conn.fetch(
                f"SELECT stage, count(*) AS n FROM case_board WHERE {narrowed(1)} GROUP BY stage",
                department, submitted_to)}
        columns = []
        for column, stages in BOARD_COLUMNS:
            cards = [board_row(row) for row in rows if row["stage"] in stages]
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
