"""Corrections and the contact log on the real PostgreSQL and RabbitMQ: a correction decided again by the refusal
rules, the corrected values and the notes sealed (never in events, outbox or bus), erased with the case's key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import time
from typing import Any

import httpx
import pytest

from eventkit.testing import (
    EventCollector,
    SettableClock,
    assert_valid,
    bearer,
    erase_personal_data,
    fetch,
    running_app,
)
from intake.bootstrap import build
from intake.settings import IntakeSettings

from .test_api import STAFF, event_count, post_document, submit

NEW_NAME = "Hanako Zzyzx-Qwerty"
NOTE = "Qwerty says the name on the form is right; the desk typed it wrong"
CALL_NOTE = "Called Qwerty-san: the referral letter is posted on Friday"
PHYSICIAN = bearer("physician", subject="dr-sato")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock.at_tokyo("2026-12-01", time(10, 0))


@pytest.fixture
async def intake(database: str, rabbitmq_url: str, clock: SettableClock) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield client


@pytest.fixture
async def bus(rabbitmq_url: str) -> AsyncIterator[EventCollector]:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    yield collector
    await collector.stop()


async def stored_text(database: str) -> str:
    """Everything the event store and the outbox hold, as text."""
    events = await fetch(database, "SELECT data, metadata FROM events")
    outbox = await fetch(database, "SELECT body, headers FROM outbox")
    return " ".join([*(f"{row['data']} {row['metadata']}" for row in events),
                     *(f"{bytes(row['body']).decode()} {row['headers']}" for row in outbox)])


async def test_a_correction_of_a_refusal_fact_declines_the_case_and_never_publishes_the_values(
        intake: httpx.AsyncClient, bus: EventCollector, database: str) -> None:
    case_id = (await submit(intake))["case_id"]
    body = {"reason": "reported_by_requester", "note": NOTE, "patient": {"name": NEW_NAME},
            "complaint_or_litigation": True}
    corrected = await intake.post(f"/cases/{case_id}/corrections", json=body)
    assert corrected.status_code == 201, corrected.text
    result = corrected.json()
    assert result["events"] == ["CaseDetailsCorrected", "CaseDeclined"]
    assert (result["status"], result["decline_reasons"]) == ("declined", ["complaint_or_litigation"])
    assert result["corrected_fields"] == ["patient_name", "complaint_or_litigation"]

    view = (await intake.get(f"/cases/{case_id}")).json()
    assert view["patient"]["name"] == NEW_NAME
    [correction] = view["corrections"]
    assert correction == {"correction_id": result["correction_id"], "fields": result["corrected_fields"],
                          "reason": "reported_by_requester", "corrected_on": "2026-12-01", "by": "coord-12",
                          "at": correction["at"], "note": NOTE}

    envelopes = await bus.wait_for(lambda es: any(e.event_name == "CaseDeclined" for e in es))
    corrected_event = next(e for e in envelopes if e.event_name == "CaseDetailsCorrected")
    assert_valid(corrected_event)
    assert corrected_event.actorid == "coord-12"
    assert corrected_event.data["fields"] == ["patient_name", "complaint_or_litigation"]
    assert corrected_event.data["complaint_or_litigation"] is True
    declined = next(e for e in envelopes if e.event_name == "CaseDeclined" and e.data.get("screening"))
    assert declined.data["reasons"] == ["complaint_or_litigation"]
    assert declined.data["screening"] == "automatic"
    for text in (await stored_text(database), " ".join(m.body.decode() for m in bus.messages)):
        assert "Qwerty" not in text

    # Declined: a correction cannot take the refusal back.
    undo = await intake.post(f"/cases/{case_id}/corrections",
                             json={"reason": "typing_error", "complaint_or_litigation": False})
    assert (undo.status_code, undo.json()["code"]) == (409, "case_declined")


async def test_a_birth_date_correction_makes_the_patient_a_minor_and_asks_for_other_documents(
        intake: httpx.AsyncClient) -> None:
    case_id = (await submit(intake, requester={"relationship": "family", "name": "Taro Zzyzx"}))["case_id"]
    for kind in ("application_form", "referral_letter", "test_results"):
        assert (await post_document(intake, case_id, kind)).status_code == 201
    assert (await intake.get(f"/cases/{case_id}")).json()["missing_documents"] == ["consent_form"]
    corrected = await intake.post(f"/cases/{case_id}/corrections",
                                  json={"reason": "differs_from_documents", "patient": {"birth_date": "2012-05-05"}})
    assert corrected.status_code == 201, corrected.text
    view = (await intake.get(f"/cases/{case_id}")).json()
    assert view["patient"]["is_minor"] is True
    assert view["patient"]["birth_date"] == "2012-05-05"
    assert view["missing_documents"] == ["relationship_proof"]
    proof = (await post_document(intake, case_id, "relationship_proof")).json()
    assert (proof["events"], proof["status"]) == (["DocumentReceived", "ConsentVerified"], "screening")


async def test_an_accepted_case_is_not_declined_by_a_correction(intake: httpx.AsyncClient, database: str) -> None:
    case_id = (await submit(intake))["case_id"]
    for kind in ("application_form", "referral_letter", "test_results"):
        await post_document(intake, case_id, kind)
    accepted = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept"}, headers=PHYSICIAN)
    assert accepted.json()["status"] == "accepted", accepted.text
    before = await event_count(database)
    refused = await intake.post(f"/cases/{case_id}/corrections",
                                json={"reason": "other", "wants_treatment_here": True})
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["reasons"]) == ("refusal_after_acceptance",
                                                                   ["seeks_treatment_here"])
    assert "withdraw" in refused.json()["detail"]
    ja = await intake.post(f"/cases/{case_id}/corrections", json={"reason": "other", "wants_treatment_here": True},
                           headers={"Accept-Language": "ja"})
    assert ja.json()["detail"].startswith("この案件はすでに受諾されているため")
    assert await event_count(database) == before
    assert (await intake.get(f"/cases/{case_id}")).json()["status"] == "accepted"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 422, "Field required"),
    ({"reason": "typing_error"}, 422, "at least one corrected field"),
    ({"reason": "typing_error", "patient": {}}, 422, "at least one corrected field"),
    ({"reason": "because", "patient": {"name": "X"}}, 422, "Input should be"),
    ({"reason": "typing_error", "patient": {"shoe_size": 24}}, 422, "Extra inputs are not permitted"),
    ({"reason": "typing_error", "patient": {"birth_date": "1800-01-01"}}, 422, "on or after 1900-01-01"),
    ({"reason": "typing_error", "requester": {"phone": "call me"}}, 422, "String should match pattern"),
    ({"reason": "typing_error", "note": "two\nlines", "patient": {"name": "X"}}, 422, "one line"),
    ({"reason": "typing_error", "patient": {"name": "Hanako Zzyzx-Canary"}}, 409, "changes nothing"),
])
async def test_a_bad_correction_is_refused_readably_and_records_nothing(
        intake: httpx.AsyncClient, database: str, body: dict[str, Any], status: int, message: str) -> None:
    case_id = (await submit(intake))["case_id"]
    before = await event_count(database)
    response = await intake.post(f"/cases/{case_id}/corrections", json=body)
    assert response.status_code == status, response.text
    assert message in response.text
    assert "shoe" not in json.dumps(response.json().get("code"))
    assert await event_count(database) == before


async def test_a_correction_or_contact_of_no_case_is_404_and_cashiers_get_403(intake: httpx.AsyncClient) -> None:
    nobody = "00000000-0000-0000-0000-000000000000"
    correction = {"reason": "typing_error", "patient": {"name": "X"}}
    assert (await intake.post(f"/cases/{nobody}/corrections", json=correction)).status_code == 404
    contact = {"contacted_on": "2026-11-30", "direction": "outgoing", "channel": "phone", "note": "hello"}
    assert (await intake.post(f"/cases/{nobody}/contacts", json=contact)).status_code == 404
    assert (await intake.get(f"/cases/{nobody}/contacts")).status_code == 404
    case_id = (await submit(intake))["case_id"]
    cashier = bearer("cashier")
    assert (await intake.get(f"/cases/{case_id}/contacts", headers=cashier)).status_code == 403
    assert (await intake.post(f"/cases/{case_id}/contacts", json=contact, headers=PHYSICIAN)).status_code == 403
    assert (await intake.post(f"/cases/{case_id}/corrections", json=correction,
                              headers=PHYSICIAN)).status_code == 403


async def test_the_contact_log_keeps_its_notes_sealed_reads_them_into_the_access_log_and_erases_them(
        intake: httpx.AsyncClient, bus: EventCollector, database: str, clock: SettableClock) -> None:
    case_id = (await submit(intake, patient={"postal_address": {"postal_code": "980-8574", "address": "仙台市"}}))[
        "case_id"]
    later = {"contacted_on": "2026-12-01", "direction": "outgoing", "channel": "phone", "note": CALL_NOTE}
    earlier = {"contacted_on": "2026-11-28", "direction": "incoming", "channel": "letter",
               "note": "Qwerty's letter:\nthe CD-R follows"}
    for body in (later, earlier):
        logged = await intake.post(f"/cases/{case_id}/contacts", json=body)
        assert logged.status_code == 201, logged.text
        assert logged.json()["events"] == ["ContactRecorded"]
    future = await intake.post(f"/cases/{case_id}/contacts", json={**later, "contacted_on": "2026-12-02"})
    assert (future.status_code, future.json()["code"]) == (409, "contact_in_future")
    bad = await intake.post(f"/cases/{case_id}/contacts", json={**later, "channel": "fax", "note": ""})
    assert bad.status_code == 422
    assert {tuple(error["loc"]) for error in bad.json()["detail"]} == {("body", "channel"), ("body", "note")}

    listed = await intake.get(f"/cases/{case_id}/contacts", headers=PHYSICIAN)
    assert listed.status_code == 200, listed.text
    contacts = listed.json()["contacts"]
    assert [(c["contacted_on"], c["direction"], c["channel"], c["handled_by"], c["note"]) for c in contacts] == [
        ("2026-11-28", "incoming", "letter", "coord-12", earlier["note"]),
        ("2026-12-01", "outgoing", "phone", "coord-12", CALL_NOTE)]
    reads = await fetch(database, "SELECT actor_id, action FROM access_log WHERE case_id = $1", case_id)
    assert ("dr-sato", "read_contact_notes") in [(row["actor_id"], row["action"]) for row in reads]

    envelopes = await bus.wait_for(lambda es: len([e for e in es if e.event_name == "ContactRecorded"]) == 2)
    recorded = [e for e in envelopes if e.event_name == "ContactRecorded"]
    for envelope in recorded:
        assert_valid(envelope)
        assert set(envelope.data) == {"case_id", "contact_id", "contacted_on", "direction", "channel", "handled_by"}
    corrected = await intake.post(f"/cases/{case_id}/corrections", json={
        "reason": "typing_error", "note": NOTE, "requester": {"phone": "090-9999-0000"},
        "patient": {"postal_address": {"postal_code": "9800811", "address": "仙台市 Qwerty棟"}}})
    assert corrected.json()["corrected_fields"] == ["requester_phone", "patient_postal_address"]
    view = (await intake.get(f"/cases/{case_id}")).json()
    assert view["requester"]["phone"] == "090-9999-0000"
    assert view["patient"]["postal_address"] == {"postal_code": "980-0811", "address": "仙台市 Qwerty棟"}
    await bus.wait_for(lambda es: any(e.event_name == "CaseDetailsCorrected" for e in es))
    for text in (await stored_text(database), " ".join(m.body.decode() for m in bus.messages)):
        for secret in ("Qwerty", "CD-R", "090-9999", "980-0811"):
            assert secret not in text
    sealed = " ".join(str(row["sealed"]) for row in await fetch(database, "SELECT sealed FROM case_notes"))
    assert "Qwerty" not in sealed

    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    assert (await erase_personal_data(intake, case_id)).status_code == 200
    after = (await intake.get(f"/cases/{case_id}/contacts")).json()["contacts"]
    assert [c["note"] for c in after] == ["***", "***"]
    assert [c["channel"] for c in after] == ["letter", "phone"], "the facts of the log stay"
    erased_view = (await intake.get(f"/cases/{case_id}")).json()
    assert erased_view["requester"]["phone"] == "***"
    assert erased_view["patient"]["postal_address"] == {"postal_code": "***", "address": "***"}
    assert [c["note"] for c in erased_view["corrections"]] == ["***"]
    again = await intake.post(f"/cases/{case_id}/contacts", json={**later, "contacted_on": "2032-12-01"})
    assert (again.status_code, again.json()["code"]) == (409, "already_erased")
    fix = await intake.post(f"/cases/{case_id}/corrections", json={"reason": "typing_error", "patient": {"name": "Y"}})
    assert (fix.status_code, fix.json()["code"]) == (409, "already_erased")
