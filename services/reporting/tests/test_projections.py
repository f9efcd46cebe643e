"""Read models on the real broker and database: a scripted set of cases published as the other services'
contract events (plus the report commands), the exact timeline and KPIs, duplicate and reordered
delivery into a fresh instance, and rebuild (the function and the `python -m reporting rebuild` command)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest

from eventkit.testing import EventCollector, SettableClock, fetch, fresh_database, fresh_vhost
from reporting.projections import rebuild_case_board
from reporting.testing import (
    Bus,
    Desk,
    Script,
    all_reporting_events_logged,
    reporting_app,
    run_script,
    shuffled_with_duplicates,
    snapshot,
    wait_logged,
)
from secondopinion_contracts import CloudEvent


class Scripted:
    def __init__(self, desk: Desk, script: Script, collector: EventCollector) -> None:
        self.desk = desk
        self.script = script
        self.collector = collector

    @property
    def client(self) -> httpx.AsyncClient:
        return self.desk.client


@pytest.fixture
async def scripted(database: str, rabbitmq_url: str) -> AsyncIterator[Scripted]:
    collector = await EventCollector(rabbitmq_url, "#").start()
    clock = SettableClock.at_tokyo(date(2026, 10, 1))
    try:
        async with reporting_app(database, rabbitmq_url, clock) as client, Bus(rabbitmq_url) as bus:
            desk = Desk(client, bus, database, clock)
            script = await run_script(desk)
            yield Scripted(desk, script, collector)
    finally:
        await collector.stop()


def names(timeline: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in timeline["events"]]


async def test_the_timeline_shows_every_service_s_events_in_order_with_who_did_what(scripted: Scripted) -> None:
    b = scripted.script["B"]
    timeline = (await scripted.client.get(f"/cases/{b.case_id}/timeline")).json()
    assert names(timeline) == [
        "CaseSubmitted", "ConsentVerified", "DocumentReceived", "DocumentReceived", "DocumentReceived",
        "CaseAccepted", "SlotsProposed", "SlotConfirmed", "OnlineBookingRegistered", "AppointmentRescheduled",
        "InvoiceIssued",
        "ConsultationCompleted", "ReportDrafted", "ReportDrafted", "ReportFinalized", "ReportDelivered",
        "PaymentCaptured", "CaseClosed",
    ]
    events = timeline["events"]
    assert [entry["service"] for entry in events[:6]] == ["intake"] * 6
    assert {entry["service"] for entry in events} == {"intake", "scheduling", "billing", "reporting"}
    drafted, delivered, closed = events[12], events[15], events[17]
    assert drafted["actor"] == {"id": "dr-sato", "role": "physician"}
    assert drafted["data"]["draft_number"] == 1
    assert delivered["actor"] == {"id": "coord-7", "role": "coordinator"}
    assert delivered["data"]["channel"] == "posted_to_attending_physician"
    assert closed["actor"] == {"id": "reporting", "role": "system"}  # closed by the payment's arrival
    assert closed["causation_id"] == str(events[16]["event_id"])
    assert closed["data"]["closed_on"] == "2026-10-20"
    assert "case_id" not in drafted["data"]
    assert timeline["case"]["stage"] == "closed"
    assert timeline["case"]["reschedules"] == 1


async def test_the_kpis_of_the_scripted_month_are_exact(scripted: Scripted) -> None:
    kpis = (await scripted.client.get("/kpis", params={"from": "2026-10-01", "to": "2026-10-31"})).json()
    assert kpis["cases"]["total"] == 14
    assert kpis["cases"]["by_stage"] == {
        "submitted": 1, "awaiting_documents": 1, "screening": 1, "scheduling": 2, "confirmed": 1, "consulted": 1,
        "report_delivered": 1, "closed": 2, "declined": 3, "withdrawn": 1,
    }
    assert kpis["cases"]["by_department"] == {
        "cardiology": 4, "oncology": 3, "neurology": 2, "dermatology": 1, "gastroenterology": 1, "hematology": 1,
        "pediatrics": 1, "urology": 1,
    }
    assert kpis["cases"]["by_mode"] == {"in_person": 8, "online": 6}
    assert sum(row["n"] for row in kpis["cases"]["by_stage_department_mode"]) == 14
    assert {"stage": "closed", "department": "oncology", "mode": "online", "n": 1} in \
        kpis["cases"]["by_stage_department_mode"]
    assert kpis["declines_by_reason"] == {
        "attending_physician_not_consenting": 2, "declined_by_specialist": 1, "refer_to_general_outpatient": 1,
        "seeks_treatment_here": 1}
    to_consultation = kpis["business_days"]["submission_to_consultation"]  # 5, 9, 9, 15
    assert to_consultation["cases"] == 4
    assert to_consultation["median"] == pytest.approx(9.0)
    assert to_consultation["p90"] == pytest.approx(13.2)
    to_report = kpis["business_days"]["submission_to_report_delivery"]  # 5, 11, 12
    assert to_report["cases"] == 3
    assert to_report["median"] == pytest.approx(11.0)
    assert to_report["p90"] == pytest.approx(11.8)
    assert kpis["no_shows"] == {"no_shows": 1, "consultations": 4, "rate": pytest.approx(0.2)}
    assert kpis["fees"] == {"captured_yen": 143_000, "refunded_yen": 33_000, "net_yen": 110_000}

    everything = (await scripted.client.get("/kpis")).json()
    assert everything["cases"]["total"] == 15  # with September's case N
    assert everything["cases"]["by_stage"]["scheduling"] == 3
    assert everything["cases"]["by_department"]["nephrology"] == 1
    only_september = (await scripted.client.get("/kpis", params={"to": "2026-09-30"})).json()
    assert only_september["cases"]["total"] == 1
    assert only_september["fees"]["net_yen"] == 0
    backwards = await scripted.client.get("/kpis", params={"from": "2026-10-31", "to": "2026-10-01"})
    assert backwards.status_code == 422
    assert (await scripted.client.get("/kpis", params={"from": "October"})).status_code == 422


async def test_the_board_puts_each_case_in_its_stage_column(scripted: Scripted) -> None:
    board = (await scripted.client.get("/board")).json()
    columns = {column["column"]: {card["case_id"] for card in column["cards"]} for column in board["columns"]}
    script = scripted.script
    expected = {
        "submitted": "M", "awaiting_documents": "J", "screening": "K", "scheduling": "GHN", "confirmed": "O",
        "consulted": "L", "report_delivered": "P", "closed": "AB", "declined_withdrawn": "DEFI",
    }
    assert list(columns) == list(expected)
    for column, letters in expected.items():
        assert columns[column] == {str(script[letter].case_id) for letter in letters}, column
    cards = {card["case_id"]: card for column in board["columns"] for card in column["cards"]}
    g = cards[str(script["G"].case_id)]
    assert g["no_shows"] == 1
    assert g["stage"] == "scheduling"
    # The number staff read over the phone, as CaseSubmitted carried it.
    assert g["case_number"] == script["G"].case_number(date.fromisoformat(g["submitted_on"]))
    # Narrowed by department and submission date (what the desk's queue filters by), totals included.
    some = next(card for card in cards.values() if card["department"])
    department, before = some["department"], some["submitted_on"]
    narrowed = (await scripted.client.get("/board", params={"department": department,
                                                            "submitted_to": before})).json()
    for column, full in zip(narrowed["columns"], board["columns"], strict=True):
        expected_cards = [card for card in full["cards"]
                          if card["department"] == department and card["submitted_on"] <= before]
        assert column["cards"] == expected_cards, column["column"]
        assert column["total"] == len(expected_cards), column["column"]
    assert 1 <= sum(column["total"] for column in narrowed["columns"]) < sum(
        column["total"] for column in board["columns"]), "the filter keeps some cases and leaves others out"
    assert (await scripted.client.get("/board", params={"department": "Cardio logy"})).status_code == 422
    assert (await scripted.client.get("/board", params={"submitted_to": "soon"})).status_code == 422
    limited = (await scripted.client.get("/board", params={"per_column": 1})).json()
    declined = next(column for column in limited["columns"] if column["column"] == "declined_withdrawn")
    assert (declined["total"], len(declined["cards"])) == (4, 1)


async def test_duplicated_and_reordered_events_leave_the_projections_unchanged(scripted: Scripted) -> None:
    live = await snapshot(scripted.desk.database, scripted.client)
    own = await all_reporting_events_logged(scripted.desk.database)
    expected = len(scripted.desk.published) + own
    sent: list[CloudEvent] = await scripted.collector.wait_count(expected, timeout=20)
    assert len({envelope.id for envelope in sent}) == expected

    # A second reporting, on its own database and vhost, gets every envelope twice, shuffled.
    async with fresh_database("replay") as database, fresh_vhost() as url, \
            reporting_app(database, url, SettableClock.at_tokyo(date(2026, 10, 1))) as client, Bus(url) as bus:
        for seed in (1, 2):
            await bus.publish(shuffled_with_duplicates(sent, seed))
            await wait_logged(database, [envelope.id for envelope in sent])
            replayed = await snapshot(database, client)
            assert replayed["board"] == live["board"]
            assert replayed["timelines"] == live["timelines"]
            assert replayed["kpis"] == live["kpis"]
            assert replayed["kpis_october"] == live["kpis_october"]
            assert replayed["columns"] == live["columns"]
        # The duplicates were recognised by the inbox: each event id is logged once.
        rows = await fetch(database, "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM received_events")
        assert (rows[0]["n"], rows[0]["ids"]) == (expected, expected)


async def test_rebuild_from_the_log_equals_the_live_projections(scripted: Scripted) -> None:
    database = scripted.desk.database
    live = await snapshot(database, scripted.client)
    runtime = scripted.client._transport.app.state.runtime  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []
    total = await rebuild_case_board(runtime.pool, lambda done, of: seen.append((done, of)), batch_events=9)
    assert total == sum(row["event_count"] for row in live["board"])
    assert len(seen) > 5, "small batches report progress as they go"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (total, total)
    assert await snapshot(database, scripted.client) == live


async def test_the_rebuild_command_prints_a_progress_bar_and_rebuilds_the_same_board(scripted: Scripted,
                                                                                   rabbitmq_url: str) -> None:
    database = scripted.desk.database
    live = await snapshot(database, scripted.client)
    await fetch(database, "UPDATE case_board SET stage = 'submitted', captured_yen = 0")  # damage it
    assert await snapshot(database, scripted.client) != live
    # The test's vhost: only there is reporting's broker user allowed in (the command checks the broker first).
    environment = {**os.environ, "REPORTING_DATABASE_URL": database, "RABBITMQ_URL": rabbitmq_url}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "reporting", "rebuild", env=environment,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    output = stderr.decode()
    assert process.returncode == 0, output
    assert "[########################################]" in output
    assert "projections rebuilt from" in output
    assert await snapshot(database, scripted.client) == live
