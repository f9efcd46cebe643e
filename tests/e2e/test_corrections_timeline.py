"""Intake and reporting together on one broker: the corrections and the contact log of a case reach reporting, which
logs every event, and its timeline shows them in the order they happened, with who did them and none of the
personal values or notes."""

from __future__ import annotations

import asyncio
import json
from datetime import time
from typing import Any

from eventkit.runtime import wait_until
from eventkit.testing import SettableClock, bearer, fresh_database, running_app
from intake.bootstrap import build as build_intake
from intake.settings import IntakeSettings
from reporting.bootstrap import build as build_reporting
from reporting.settings import ReportingSettings

from .hospital import case_request, expect

COORDINATOR = bearer("coordinator", subject="coord-1")


async def test_corrections_and_contacts_appear_in_reportings_timeline_in_order(rabbitmq_url: str) -> None:
    clock = SettableClock.at_tokyo("2026-12-01", time(9, 0))
    async with fresh_database("intake") as intake_db, fresh_database("reporting") as reporting_db:
        intake_app = build_intake(IntakeSettings(INTAKE_DATABASE_URL=intake_db, RABBITMQ_URL=rabbitmq_url,
                                                 OUTBOX_SWEEP_SECONDS=0.2), clock=clock)
        reporting_app = build_reporting(ReportingSettings(REPORTING_DATABASE_URL=reporting_db,
                                                          RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2),
                                        clock=clock)
        async with running_app(reporting_app, headers=COORDINATOR) as reporting, \
                running_app(intake_app, headers=COORDINATOR) as intake:
            case_id = expect(await intake.post("/cases", json=case_request("in_person", "Hanako Qwerty")),
                             201)["case_id"]
            clock.set_tokyo("2026-12-01", time(10, 0))
            expect(await intake.post(f"/cases/{case_id}/contacts", json={
                "contacted_on": "2026-12-01", "direction": "outgoing", "channel": "phone",
                "note": "Qwerty-san will post the consent form"}), 201)
            clock.set_tokyo("2026-12-01", time(11, 0))
            expect(await intake.post(f"/cases/{case_id}/corrections", json={
                "reason": "typing_error", "note": "Qwerty, not Qwerti", "patient": {"name": "Hanako Qwerti"}}), 201)
            clock.set_tokyo("2026-12-01", time(12, 0))
            expect(await intake.post(f"/cases/{case_id}/contacts", json={
                "contacted_on": "2026-12-01", "direction": "incoming", "channel": "letter",
                "note": "Qwerty's letter: the attending physician no longer agrees"}), 201)
            clock.set_tokyo("2026-12-01", time(13, 0))
            declined = expect(await intake.post(f"/cases/{case_id}/corrections", json={
                "reason": "reported_by_requester", "attending_physician": {"consents": False}}), 201)
            assert declined["status"] == "declined"

            timeline: list[dict[str, Any]] = []

            async def all_logged() -> bool:
                response = await reporting.get(f"/cases/{case_id}/timeline")
                timeline[:] = response.json()["events"] if response.status_code == 200 else []
                return any(entry["event"] == "CaseDeclined" for entry in timeline)

            await wait_until(all_logged, timeout=20)
            await asyncio.sleep(0.5)
            assert await all_logged()
    assert [entry["event"] for entry in timeline] == [
        "CaseSubmitted", "ContactRecorded", "CaseDetailsCorrected", "ContactRecorded",
        "CaseDetailsCorrected", "CaseDeclined"]
    assert {entry["service"] for entry in timeline} == {"intake"}
    contact, corrected, letter, refusal, decline = timeline[1:]
    assert contact["actor"] == {"id": "coord-1", "role": "coordinator"}
    assert contact["data"] == {"contact_id": contact["data"]["contact_id"], "contacted_on": "2026-12-01",
                               "direction": "outgoing", "channel": "phone", "handled_by": "coord-1"}
    assert corrected["data"]["fields"] == ["patient_name"]
    assert corrected["data"]["reason"] == "typing_error"
    assert letter["data"]["channel"] == "letter"
    assert refusal["data"]["attending_physician_consents"] is False
    assert decline["data"]["reasons"] == ["attending_physician_not_consenting"]
    assert "Qwert" not in json.dumps(timeline, default=str)
