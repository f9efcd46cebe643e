"""The opinion report end to end on the real PostgreSQL and RabbitMQ: other services' events arrive on the
bus, the desk drafts, finalizes and delivers over HTTP, and reporting's own events go out on the bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest

from eventkit.testing import EventCollector, SettableClock, assert_valid, bearer, fetch, scalar
from reporting.testing import COORDINATOR, PHYSICIAN, Bus, Case, Desk, reporting_app, settle_quietly
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events import intake

CONSULTATION_DAY = date(2026, 10, 8)
SECRET_OPINION = "Zzyzx-opinion: the catheter treatment is reasonable"


@dataclass
class Reporting:
    desk: Desk
    bus: EventCollector

    @property
    def client(self) -> httpx.AsyncClient:
        return self.desk.client

    @property
    def database(self) -> str:
        return self.desk.database

    async def stored_events(self) -> int:
        return int(await scalar(self.database, "SELECT count(*) FROM events"))

    def published(self, name: str, case: Case) -> list[CloudEvent]:
        return [envelope for envelope in self.bus.of_type(name) if envelope.subject == str(case.case_id)]

    async def consulted(self, case: Case, *, paid: bool = False) -> None:
        events = [case.invoiced(), case.paid(CONSULTATION_DAY)] if paid else []
        await self.desk.publish(case.submitted(date(2026, 10, 1)), *events, case.completed(CONSULTATION_DAY))
        await self.desk.settle()
        self.desk.clock.set_tokyo(CONSULTATION_DAY)

    async def draft(self, case: Case, summary: str = SECRET_OPINION) -> httpx.Response:
        return await self.client.post(f"/cases/{case.case_id}/report",
                                      json={"physician": "dr-sato", "summary": summary}, headers=PHYSICIAN)

    async def finalize(self, case: Case) -> httpx.Response:
        return await self.client.post(f"/cases/{case.case_id}/report/finalize", headers=PHYSICIAN)

    async def deliver(self, case: Case, channel: str) -> httpx.Response:
        return await self.client.post(f"/cases/{case.case_id}/report/delivery", json={"channel": channel},
                                      headers=COORDINATOR)


@pytest.fixture
async def reporting(database: str, rabbitmq_url: str) -> AsyncIterator[Reporting]:
    collector = await EventCollector(rabbitmq_url, "reporting.#").start()
    clock = SettableClock.at_tokyo(date(2026, 10, 1))
    try:
        async with reporting_app(database, rabbitmq_url, clock) as client, Bus(rabbitmq_url) as bus:
            yield Reporting(Desk(client, bus, database, clock), collector)
    finally:
        await collector.stop()




async def test_a_report_is_drafted_redrafted_finalized_and_handed_over_which_closes_a_paid_case(
        reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case, paid=True)
    first = await reporting.draft(case, "first thoughts")
    assert first.status_code == 201, first.text
    second = await reporting.draft(case)
    assert (second.json()["draft_number"], second.json()["report_id"]) == (2, first.json()["report_id"])
    report = (await reporting.client.get(f"/cases/{case.case_id}/report", headers=PHYSICIAN)).json()
    assert (report["status"], report["summary"], report["physician_id"]) == ("drafted", SECRET_OPINION, "dr-sato")
    # The desk sees where the report stands, not its medical text.
    for_desk = (await reporting.client.get(f"/cases/{case.case_id}/report", headers=COORDINATOR)).json()
    assert (for_desk["status"], for_desk["summary"], for_desk["summary_withheld"]) == ("drafted", None, True)
    assert report["consultation"] == {"mode": "in_person", "consulted_on": "2026-10-08"}
    assert report["fee_settled"] is True

    finalized = await reporting.finalize(case)
    assert finalized.json()["status"] == "finalized"
    before = await reporting.stored_events()
    late = await reporting.draft(case, "an afterthought")
    assert late.status_code == 409
    assert "finalized" in late.json()["detail"]
    assert await reporting.stored_events() == before

    handed = await reporting.deliver(case, "handed_to_patient")
    assert handed.status_code == 200, handed.text
    assert handed.json()["events"] == ["ReportDelivered", "CaseClosed"]
    assert handed.json()["case_closed"] is True

    await reporting.bus.wait_for(lambda envelopes: any(e.event_name == "CaseClosed" for e in envelopes))
    await settle_quietly()
    names = [envelope.event_name for envelope in reporting.bus.envelopes]
    assert names == ["ReportDrafted", "ReportDrafted", "ReportFinalized", "ReportDelivered", "CaseClosed"]
    for envelope in reporting.bus.envelopes:
        assert_valid(envelope)
        assert envelope.subject == str(case.case_id)
    assert all(b"Zzyzx" not in message.body and b"first thoughts" not in message.body
               for message in reporting.bus.messages), "the report text never leaves reporting"
    drafted, _, final, delivered, closed = reporting.bus.envelopes
    assert drafted.actorid == "dr-sato"
    assert final.data["finalized_on"] == "2026-10-08"
    assert delivered.data["channel"] == "handed_to_patient"
    assert delivered.actorid == "coord-7"
    assert closed.data == {"case_id": str(case.case_id), "report_id": first.json()["report_id"], "mode": "in_person",
                           "closed_on": "2026-10-08"}
    board = (await reporting.client.get(f"/cases/{case.case_id}/timeline")).json()["case"]
    assert (board["stage"], board["report_status"], board["delivery_channel"]) == (
        "closed", "delivered", "handed_to_patient")
    reads = await fetch(reporting.database, "SELECT actor_id, actor_role, case_id, action FROM access_log")
    assert [tuple(row) for row in reads] == [("dr-sato", "physician", str(case.case_id), "read_opinion_report")]


async def test_only_a_physician_writes_the_report_and_only_the_desk_records_delivery(reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    before = await reporting.stored_events()
    as_coordinator = await reporting.client.post(f"/cases/{case.case_id}/report",
                                                 json={"physician": "dr-sato", "summary": "s"}, headers=COORDINATOR)
    assert as_coordinator.status_code == 403
    await reporting.draft(case)
    await reporting.finalize(case)
    as_physician = await reporting.client.post(f"/cases/{case.case_id}/report/delivery",
                                               json={"channel": "handed_to_patient"}, headers=PHYSICIAN)
    assert as_physician.status_code == 403
    assert await reporting.stored_events() == before + 2  # the draft and the finalization only


async def test_the_signed_in_physician_of_the_cases_department_writes_the_report(reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    before = await reporting.stored_events()
    oncologist = bearer("physician", subject="dr-onco", departments=["oncology"])
    report = f"/cases/{case.case_id}/report"
    other_department = await reporting.client.post(report, json={"summary": "s"}, headers=oncologist)
    assert other_department.status_code == 403
    assert "another department" in other_department.json()["detail"]
    as_someone_else = await reporting.client.post(report, json={"physician": "dr-onco", "summary": "s"},
                                                  headers=PHYSICIAN)
    assert as_someone_else.status_code == 403
    assert await reporting.stored_events() == before
    drafted = await reporting.client.post(report, json={"summary": "s"}, headers=PHYSICIAN)
    assert drafted.status_code == 201, drafted.text
    assert (await reporting.client.post(f"{report}/finalize", headers=oncologist)).status_code == 403
    read = (await reporting.client.get(report, headers=PHYSICIAN)).json()
    assert read["physician_id"] == "dr-sato"


async def test_the_report_text_is_erased_with_the_patient_s_personal_data(reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    await reporting.draft(case, "first")
    await reporting.draft(case)
    await reporting.desk.publish(intake.PersonalDataErased(case_id=case.case_id, erased_on=date(2031, 10, 9)))
    await reporting.desk.settle()
    report = (await reporting.client.get(f"/cases/{case.case_id}/report", headers=PHYSICIAN)).json()
    assert (report["summary"], report["summary_erased_on"], report["draft_number"]) == (None, "2031-10-09", 2)
    texts = await fetch(reporting.database, "SELECT summary FROM report_drafts WHERE case_id = $1", case.case_id)
    assert [row["summary"] for row in texts] == [None, None]
    timeline = (await reporting.client.get(f"/cases/{case.case_id}/timeline")).json()
    assert timeline["events"][-1]["event"] == "PersonalDataErased"


AMENDED_OPINION = "Zzyzx-amended: catheter treatment, with the dose corrected"


async def amend(reporting: Reporting, case: Case, **changes: str) -> httpx.Response:
    body = {"physician": "dr-kato", "summary": AMENDED_OPINION, "reason": "correction",
            "note": "Zzyzx-note: the dose was mistyped", **changes}
    return await reporting.client.post(f"/cases/{case.case_id}/report/amendments", json=body,
                                       headers=bearer("physician", subject="dr-kato"))


async def test_a_final_report_is_amended_as_a_new_version_and_delivered_again(reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case, paid=True)
    await reporting.draft(case)
    before = await reporting.stored_events()
    too_early = await amend(reporting, case)
    assert (too_early.status_code, too_early.json()["code"]) == (409, "report_not_final")
    assert await reporting.stored_events() == before
    await reporting.finalize(case)
    assert (await reporting.deliver(case, "handed_to_patient")).json()["case_closed"] is True

    reporting.desk.clock.set_tokyo(date(2026, 10, 13))
    amended = await amend(reporting, case)
    assert amended.status_code == 201, amended.text
    assert (amended.json()["events"], amended.json()["report_version"]) == (["ReportAmended"], 2)
    report = (await reporting.client.get(f"/cases/{case.case_id}/report", headers=PHYSICIAN)).json()
    assert (report["status"], report["report_version"], report["summary"]) == ("finalized", 2, AMENDED_OPINION)
    as_desk = (await reporting.client.get(f"/cases/{case.case_id}/report", headers=COORDINATOR)).json()
    assert (as_desk["summary"], [v["note"] for v in as_desk["versions"]]) == (None, [None, None]), \
        "the desk sees where the report stands, not the physicians' words"
    refused = await reporting.client.get(f"/cases/{case.case_id}/report/versions/2", headers=COORDINATOR)
    assert refused.status_code == 403
    assert report["delivery"] == {"channel": "handed_to_patient", "delivered_on": "2026-10-08", "report_version": 1}
    assert [(v["report_version"], v["physician_id"], v["reason"], v["current"]) for v in report["versions"]] == [
        (1, "dr-sato", None, False), (2, "dr-kato", "correction", True)]
    first = (await reporting.client.get(f"/cases/{case.case_id}/report/versions/1", headers=PHYSICIAN)).json()
    assert first["summary"] == SECRET_OPINION, "the earlier version stays readable"
    second = (await reporting.client.get(f"/cases/{case.case_id}/report/versions/2", headers=PHYSICIAN)).json()
    assert (second["summary"], second["note"]) == (AMENDED_OPINION, "Zzyzx-note: the dose was mistyped")
    third = await reporting.client.get(f"/cases/{case.case_id}/report/versions/3", headers=PHYSICIAN)
    assert third.status_code == 404

    handed_late = await reporting.deliver(case, "handed_to_patient")
    assert (handed_late.status_code, handed_late.json()["code"]) == (409, "channel_not_allowed")
    posted = await reporting.deliver(case, "posted_to_attending_physician")
    assert posted.status_code == 200, posted.text
    assert posted.json()["events"] == ["ReportDelivered"], "the case was closed once, by the first delivery"
    again = await reporting.deliver(case, "posted_to_attending_physician")
    assert (again.status_code, again.json()["code"]) == (409, "report_delivered")

    await reporting.bus.wait_for(lambda envelopes: len(envelopes) >= 6)
    await settle_quietly()
    names = [envelope.event_name for envelope in reporting.bus.envelopes]
    assert names == ["ReportDrafted", "ReportFinalized", "ReportDelivered", "CaseClosed", "ReportAmended",
                     "ReportDelivered"]
    for envelope in reporting.bus.envelopes:
        assert_valid(envelope)
    assert all(b"Zzyzx" not in message.body for message in reporting.bus.messages), "texts never leave reporting"
    _, _, delivered, _, amendment, redelivered = reporting.bus.envelopes
    assert delivered.data["report_version"] == 1
    assert amendment.data == {"case_id": str(case.case_id), "report_id": report["report_id"], "report_version": 2,
                              "physician_id": "dr-kato", "reason": "correction", "amended_on": "2026-10-13"}
    assert amendment.actorid == "dr-kato", "the signed-in physician who amended it"
    assert (redelivered.data["report_version"], redelivered.data["channel"]) == (2, "posted_to_attending_physician")

    await reporting.desk.settle()
    timeline = (await reporting.client.get(f"/cases/{case.case_id}/timeline")).json()["events"]
    history = [(entry["event"], entry["data"].get("report_version")) for entry in timeline
               if entry["event"].startswith("Report")]
    assert history == [("ReportDrafted", None), ("ReportFinalized", None), ("ReportDelivered", 1),
                       ("ReportAmended", 2), ("ReportDelivered", 2)]


async def test_an_amendment_s_text_and_note_are_erased_with_the_patient_s_personal_data(
        reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    await reporting.draft(case)
    await reporting.finalize(case)
    assert (await amend(reporting, case)).status_code == 201
    await reporting.desk.publish(intake.PersonalDataErased(case_id=case.case_id, erased_on=date(2031, 10, 9)))
    await reporting.desk.settle()
    report = (await reporting.client.get(f"/cases/{case.case_id}/report")).json()
    assert (report["summary"], report["summary_erased_on"]) == (None, "2031-10-09")
    second = (await reporting.client.get(f"/cases/{case.case_id}/report/versions/2", headers=PHYSICIAN)).json()
    assert (second["summary"], second["note"], second["reason"]) == (None, None, "correction")
    texts = await fetch(reporting.database, "SELECT summary, note FROM report_versions WHERE case_id = $1",
                        case.case_id)
    assert [tuple(row) for row in texts] == [(None, None)]


@pytest.mark.parametrize("changes", [{"reason": "whim"}, {"note": ""}, {"summary": ""}, {"physician": "dr kato"}])
async def test_malformed_amendments_get_422_and_record_nothing(reporting: Reporting, changes: dict[str, str]) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    await reporting.draft(case)
    await reporting.finalize(case)
    before = await reporting.stored_events()
    assert (await amend(reporting, case, **changes)).status_code == 422
    assert await reporting.stored_events() == before


async def test_an_online_report_cannot_be_handed_over_and_the_refusal_records_nothing(reporting: Reporting) -> None:
    case = Case("oncology", Mode.ONLINE)
    await reporting.consulted(case)
    assert (await reporting.draft(case)).status_code == 201
    assert (await reporting.finalize(case)).status_code == 200
    before = await reporting.stored_events()

    refused = await reporting.deliver(case, "handed_to_patient")
    assert refused.status_code == 409
    assert refused.json()["code"] == "channel_not_allowed"
    assert "online" in refused.json()["detail"]
    assert await reporting.stored_events() == before
    assert (await reporting.client.get(f"/cases/{case.case_id}/report")).json()["status"] == "finalized"

    posted = await reporting.deliver(case, "posted_to_attending_physician")
    assert posted.status_code == 200
    assert posted.json()["events"] == ["ReportDelivered"]  # the card has not been charged: not closed
    delivered = await reporting.bus.wait_for(lambda es: any(e.event_name == "ReportDelivered" for e in es))
    assert [e.data["channel"] for e in delivered if e.event_name == "ReportDelivered"] == [
        "posted_to_attending_physician"]


async def test_an_in_person_report_is_handed_over_only_on_the_consultation_day(reporting: Reporting) -> None:
    case = Case("urology", Mode.IN_PERSON)
    await reporting.consulted(case)
    await reporting.draft(case)
    await reporting.finalize(case)
    reporting.desk.clock.set_tokyo(date(2026, 10, 9))
    refused = await reporting.deliver(case, "handed_to_patient")
    assert refused.status_code == 409
    assert "posted" in refused.json()["detail"]


async def test_a_payment_after_delivery_closes_the_case_exactly_once_even_when_redelivered(
        reporting: Reporting) -> None:
    case = Case("oncology", Mode.ONLINE)
    await reporting.consulted(case)
    await reporting.draft(case)
    await reporting.finalize(case)
    assert (await reporting.deliver(case, "posted_to_attending_physician")).json()["events"] == ["ReportDelivered"]

    payment = await reporting.desk.publish(case.paid(date(2026, 10, 9)))
    await reporting.desk.bus.publish(payment)  # the broker delivers it again
    closed = await reporting.bus.wait_for(lambda es: any(e.event_name == "CaseClosed" for e in es))
    await reporting.desk.settle()
    await settle_quietly()
    assert len(reporting.published("CaseClosed", case)) == 1
    closing = next(e for e in closed if e.event_name == "CaseClosed")
    assert closing.causationid == str(payment[0].id)
    assert closing.actorrole == "system"
    assert (await reporting.client.get(f"/cases/{case.case_id}/report")).json()["closed_on"] == "2026-10-08"


async def test_a_payment_and_the_delivery_at_the_same_moment_close_the_case_once(reporting: Reporting) -> None:
    case = Case("neurology", Mode.ONLINE)
    await reporting.consulted(case)
    await reporting.draft(case)
    await reporting.finalize(case)
    delivered, _ = await asyncio.gather(reporting.deliver(case, "posted_to_attending_physician"),
                                        reporting.desk.publish(case.paid(CONSULTATION_DAY)))
    assert delivered.status_code == 200
    await reporting.bus.wait_for(lambda es: any(e.event_name == "CaseClosed" for e in es))
    await reporting.desk.settle()
    await settle_quietly()
    assert len(reporting.published("CaseClosed", case)) == 1


async def test_a_fully_refunded_fee_does_not_close_the_case(reporting: Reporting) -> None:
    case = Case("hematology", Mode.IN_PERSON)
    await reporting.desk.publish(case.refunded())  # the refund overtakes the capture on the bus
    await reporting.consulted(case, paid=True)
    await reporting.draft(case)
    await reporting.finalize(case)
    handed = await reporting.deliver(case, "handed_to_patient")
    assert handed.json()["events"] == ["ReportDelivered"]
    report = (await reporting.client.get(f"/cases/{case.case_id}/report")).json()
    assert (report["fee_settled"], report["closed_on"]) == (False, None)


MALFORMED_DRAFTS = [
    {"physician": "dr-sato", "summary": ""},
    {"physician": "dr-sato", "summary": "x" * 20_001},
    {"physician": "dr sato; DROP", "summary": "ok"},
    {"physician": "dr-sato"},
    {"physician": "dr-sato", "summary": "ok", "diagnosis_code": "I25"},
]


async def test_malformed_drafts_get_422_with_field_messages_and_record_nothing(reporting: Reporting) -> None:
    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.consulted(case)
    before = await reporting.stored_events()
    for body in MALFORMED_DRAFTS:
        response = await reporting.client.post(f"/cases/{case.case_id}/report", json=body, headers=PHYSICIAN)
        assert response.status_code == 422, body
        assert all("loc" in error and "msg" in error for error in response.json()["detail"])
    assert await reporting.stored_events() == before


async def test_unknown_cases_are_404_and_commands_out_of_turn_are_409_recording_nothing(reporting: Reporting) -> None:
    unknown = uuid.uuid4()
    assert (await reporting.client.post(f"/cases/{unknown}/report", json={"summary": "s"},
                                        headers=PHYSICIAN)).status_code == 404
    assert (await reporting.client.post(f"/cases/{unknown}/report/finalize", headers=PHYSICIAN)).status_code == 404
    assert (await reporting.client.get(f"/cases/{unknown}/report")).status_code == 404
    assert (await reporting.client.get(f"/cases/{unknown}/timeline")).status_code == 404
    assert (await reporting.client.get("/cases/not-a-uuid/timeline")).status_code == 422

    case = Case("cardiology", Mode.IN_PERSON)
    await reporting.desk.publish(case.submitted(date(2026, 10, 1)))
    await reporting.desk.settle()
    too_early = await reporting.draft(case)
    assert too_early.status_code == 409
    assert too_early.json()["code"] == "no_consultation"
    await reporting.desk.publish(case.completed(CONSULTATION_DAY))
    await reporting.desk.settle()
    before = await reporting.stored_events()
    no_draft = await reporting.finalize(case)
    assert (no_draft.status_code, no_draft.json()["code"]) == (409, "no_draft")
    not_final = await reporting.deliver(case, "posted_to_attending_physician")
    assert (not_final.status_code, not_final.json()["code"]) == (409, "report_not_final")
    assert (await reporting.deliver(case, "by_carrier_pigeon")).status_code == 422
    assert (await reporting.client.get(f"/cases/{case.case_id}/report")).status_code == 404
    assert await reporting.stored_events() == before
    await settle_quietly()
    assert reporting.bus.envelopes == []


async def test_the_old_dashboard_leads_to_the_consoles_board_and_health_and_readiness(reporting: Reporting) -> None:
    page = await reporting.client.get("/dashboard", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "http://127.0.0.1:8000/board")
    assert (await reporting.client.get("/healthz")).json()["status"] == "alive"
    ready = await reporting.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["consumer_attached"] is True
