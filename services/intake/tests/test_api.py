"""Intake end to end on the real PostgreSQL and RabbitMQ: HTTP command -> event store -> outbox -> bus."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from typing import Any

import asyncpg
import httpx
import pytest

from eventkit.testing import EventCollector, SettableClock, assert_valid, bearer, running_app
from intake.bootstrap import build
from intake.settings import IntakeSettings

PATIENT_NAME = "Hanako Zzyzx-Canary"
STAFF = bearer(subject="coord-12")


def request_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {"relationship": "self", "name": PATIENT_NAME, "phone": "03-1234-5678"},
        "patient": {"name": PATIENT_NAME, "birth_date": "1968-04-01", "deceased": False},
        "mode": "in_person",
        "department": "cardiology",
        "question": "Cardiac surgery or catheter treatment?",
        "attending_physician": {"name": "Dr. Ichiro Sato", "institution": "Minato Clinic", "consents": True},
        "wants_treatment_here": False,
        "complaint_or_litigation": False,
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


@pytest.fixture
async def intake(database: str, rabbitmq_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    clock = lambda: datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # noqa: E731
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield client


@pytest.fixture
async def bus(rabbitmq_url: str) -> AsyncIterator[EventCollector]:
    collector = await EventCollector(rabbitmq_url, "intake.#").start()
    yield collector
    await collector.stop()




async def event_count(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def submit(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/cases", json=request_body(**changes))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def post_document(client: httpx.AsyncClient, case_id: str, kind: str) -> httpx.Response:
    return await client.post(f"/cases/{case_id}/documents", json={"kind": kind, "received_on": "2026-12-03"})


async def test_a_case_goes_from_submission_through_documents_and_consent_to_acceptance(
        intake: httpx.AsyncClient, bus: EventCollector) -> None:
    case = await submit(intake, requester={"relationship": "family", "name": "Taro Zzyzx"})
    case_id = case["case_id"]
    assert case["status"] == "submitted"
    for kind in ("application_form", "referral_letter", "test_results"):
        assert (await post_document(intake, case_id, kind)).status_code == 201
    assert (await intake.get(f"/cases/{case_id}")).json()["missing_documents"] == ["consent_form"]
    consent = await post_document(intake, case_id, "consent_form")
    assert consent.json()["events"] == ["DocumentReceived", "ConsentVerified"]
    assert consent.json()["status"] == "screening"
    accepted = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept", "physician": "dr-sato"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"

    envelopes = await bus.wait_count(7)
    await asyncio.sleep(0.3)
    assert len(bus.envelopes) == 7, "each event is received exactly once"
    assert [e.event_name for e in envelopes] == [
        "CaseSubmitted", "DocumentReceived", "DocumentReceived", "DocumentReceived", "DocumentReceived",
        "ConsentVerified", "CaseAccepted"]
    assert [e.sequence for e in envelopes] == list(range(1, 8))
    assert len({e.id for e in envelopes}) == 7
    for envelope in envelopes:
        assert_valid(envelope)
        assert envelope.subject == case_id
        assert envelope.actorid == "coord-12"
    assert envelopes[-1].data == {"case_id": case_id, "department": "cardiology", "mode": "in_person",
                                  "screened_by": "dr-sato"}
    assert all(PATIENT_NAME.encode() not in message.body for message in bus.messages)
    assert all(b"Zzyzx" not in message.body for message in bus.messages)

    view = (await intake.get(f"/cases/{case_id}")).json()
    assert view["consent"] == {"verified": True, "basis": "consent_form"}
    assert view["patient"]["name"] == PATIENT_NAME
    assert [entry["event"] for entry in view["history"]][-1] == "CaseAccepted"
    listed = (await intake.get("/cases", params={"status": "accepted"})).json()["cases"]
    assert [row["case_id"] for row in listed] == [case_id]


@pytest.mark.parametrize(("changes", "reasons"), [
    ({"requester": {"relationship": "other"}}, ["requester_not_patient_or_family"]),
    ({"requester": {"relationship": "family"}, "patient": {"consents": False}}, ["missing_patient_consent"]),
    ({"wants_treatment_here": True}, ["seeks_treatment_here"]),
    ({"complaint_or_litigation": True}, ["complaint_or_litigation"]),
    ({"patient": {"deceased": True}}, ["patient_deceased"]),
    ({"attending_physician": {"consents": False}}, ["attending_physician_not_consenting"]),
    ({"department": "astrology"}, ["no_specialist_available"]),
])
async def test_refusal_reasons_decline_at_once_and_the_response_says_so(
        intake: httpx.AsyncClient, bus: EventCollector, changes: dict[str, Any], reasons: list[str]) -> None:
    case = await submit(intake, **changes)
    assert case["status"] == "declined"
    assert case["decline_reasons"] == reasons
    assert case["events"] == ["CaseSubmitted", "CaseDeclined"]
    declined = (await bus.wait_for(lambda es: any(e.event_name == "CaseDeclined" for e in es)))[-1]
    assert declined.data["reasons"] == reasons
    assert_valid(declined)


async def test_the_specialist_declines_with_a_reason(intake: httpx.AsyncClient, bus: EventCollector) -> None:
    case = await submit(intake)
    decision = {"decision": "decline", "reasons": ["declined_by_specialist"], "physician": "dr-x"}
    response = await intake.post(f"/cases/{case['case_id']}/screening", json=decision)
    assert response.json()["status"] == "declined"
    declined = (await bus.wait_for(lambda es: any(e.event_name == "CaseDeclined" for e in es)))[-1]
    assert declined.data["reasons"] == ["declined_by_specialist"]
    assert declined.data["declined_by"] == "dr-x"


@pytest.mark.parametrize("body", [
    request_body(mode="by_fax"),
    request_body(requester={"relationship": "neighbour"}),
    request_body(patient={"birth_date": "not-a-date"}),
    request_body(department="Cardiology; DROP TABLE"),
    request_body(question=""),
    request_body(question="x" * 4001),
    {**request_body(), "unexpected": 1},
    {k: v for k, v in request_body().items() if k != "attending_physician"},
])
async def test_malformed_submissions_get_422_with_field_messages_and_record_nothing(
        intake: httpx.AsyncClient, database: str, body: dict[str, Any]) -> None:
    response = await intake.post("/cases", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail
    assert all("loc" in error and "msg" in error for error in detail)
    assert await event_count(database) == 0


async def test_rejected_commands_say_why_and_record_nothing(intake: httpx.AsyncClient, database: str) -> None:
    unknown = await post_document(intake, "00000000-0000-0000-0000-000000000000", "application_form")
    assert unknown.status_code == 404
    case = await submit(intake)
    before = await event_count(database)
    not_ready = await intake.post(f"/cases/{case['case_id']}/screening", json={"decision": "accept", "physician": "d"})
    assert not_ready.status_code == 409
    assert not_ready.json()["reasons"] == ["document:application_form", "document:referral_letter"]
    assert (await post_document(intake, case["case_id"], "x-ray-on-papyrus")).status_code == 422
    assert (await intake.get("/cases/not-a-uuid")).status_code == 422
    assert await event_count(database) == before
    await intake.post(f"/cases/{case['case_id']}/withdrawal", json={"reason": "patient_request"})
    after_withdrawal = await event_count(database)
    again = await intake.post(f"/cases/{case['case_id']}/withdrawal", json={"reason": "patient_request"})
    assert again.status_code == 409
    assert "withdrawn" in again.json()["detail"]
    assert await event_count(database) == after_withdrawal


async def test_concurrent_commands_on_one_case_never_share_a_version(intake: httpx.AsyncClient, database: str) -> None:
    case = await submit(intake)
    responses = await asyncio.gather(*(post_document(intake, case["case_id"], "test_results") for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [201] * 8
    conn = await asyncpg.connect(database)
    try:
        versions = [row["version"] for row in await conn.fetch(
            "SELECT version FROM events WHERE stream_id = $1 ORDER BY version", f"case-{case['case_id']}")]
    finally:
        await conn.close()
    assert versions == list(range(1, 11))  # submitted + consent + 8 documents, no gap, no duplicate
    view = (await intake.get(f"/cases/{case['case_id']}")).json()
    assert len(view["documents"]) == 8
    assert view["version"] == 10


async def test_projection_rebuild_gives_the_same_case_view(intake: httpx.AsyncClient, database: str) -> None:
    case = await submit(intake, requester={"relationship": "family"})
    await post_document(intake, case["case_id"], "consent_form")
    live = (await intake.get(f"/cases/{case['case_id']}")).json()
    runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    assert await runtime.store.rebuild_projections() == 3
    assert (await intake.get(f"/cases/{case['case_id']}")).json() == live


async def test_health_and_readiness(intake: httpx.AsyncClient) -> None:
    assert (await intake.get("/healthz")).json()["status"] == "alive"
    ready = await intake.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] is True
    metrics = await intake.get("/metrics")
    assert "secondopinion_outbox_backlog" in metrics.text


async def test_declines_are_published_as_v2_with_v1_beside_them_for_v1_only_subscribers(
        intake: httpx.AsyncClient, rabbitmq_url: str) -> None:
    v1_only = await EventCollector(rabbitmq_url, "intake.CaseDeclined.v1").start()
    v2_only = await EventCollector(rabbitmq_url, "intake.CaseDeclined.v2").start()
    try:
        case = await submit(intake)
        decision = {"decision": "decline", "reasons": ["refer_to_general_outpatient"], "physician": "dr-k"}
        response = await intake.post(f"/cases/{case['case_id']}/screening", json=decision)
        assert response.json()["recommendation"] == "general_outpatient"
        assert response.json()["decline_reasons"] == []
        (v1,) = await v1_only.wait_count(1)
        (v2,) = await v2_only.wait_count(1)
    finally:
        await v1_only.stop()
        await v2_only.stop()
    assert v2.data == {"case_id": case["case_id"], "reasons": [], "recommendation": "general_outpatient",
                       "screening": "specialist", "declined_by": "dr-k"}
    assert v1.data == {"case_id": case["case_id"], "reasons": ["refer_to_general_outpatient"], "declined_by": "dr-k"}
    assert v1.supersededby == "secondopinion.intake.CaseDeclined.v2"
    assert v1.id != v2.id
    assert v1.sequence == v2.sequence
    assert_valid(v1)
    assert_valid(v2)


async def test_a_v1_decline_in_the_store_is_upcast_on_load(intake: httpx.AsyncClient, database: str) -> None:
    case = await submit(intake)
    conn = await asyncpg.connect(database)
    try:  # history written before v2 existed
        await conn.execute(
            """INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, data,
                                   metadata)
               VALUES ($1, 'case', 3, gen_random_uuid(), 'CaseDeclined', 1, $2, '{}')""",
            f"case-{case['case_id']}",
            json.dumps({"case_id": case["case_id"], "reasons": ["seeks_treatment_here", "refer_to_general_outpatient"],
                        "declined_by": "dr-old"}))
    finally:
        await conn.close()
    runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    await runtime.store.rebuild_projections()
    view = (await intake.get(f"/cases/{case['case_id']}")).json()
    assert view["status"] == "declined"
    assert view["decline_reasons"] == ["seeks_treatment_here"]
    assert view["recommendation"] == "general_outpatient"
    refused = await intake.post(f"/cases/{case['case_id']}/withdrawal", json={"reason": "other"})
    assert refused.status_code == 409


PATIENT_ADDRESS = {"postal_code": "9808574", "address": "宮城県仙台市青葉区星陵町1-1 Zzyzx-Canary棟"}
CLINIC_ADDRESS = {"postal_code": "105-0011", "address": "東京都港区芝公園4-2-8 みなとクリニック"}


async def test_postal_addresses_are_kept_sealed_shown_to_the_desk_never_published_and_erased(
        database: str, rabbitmq_url: str, bus: EventCollector) -> None:
    clock = SettableClock.at_tokyo("2026-12-01", time(10, 0))
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    async with running_app(build(settings, clock=clock), headers=STAFF) as intake:
        await _addresses_through_their_life(intake, bus, database, clock)


async def _addresses_through_their_life(intake: httpx.AsyncClient, bus: EventCollector, database: str,
                                        clock: SettableClock) -> None:
    case = await submit(intake, patient={"postal_address": PATIENT_ADDRESS},
                        attending_physician={"institution_address": CLINIC_ADDRESS})
    case_id = case["case_id"]
    view = (await intake.get(f"/cases/{case_id}")).json()
    assert view["patient"]["postal_address"] == {"postal_code": "980-8574", "address": PATIENT_ADDRESS["address"]}
    assert view["attending_physician"]["institution_address"] == CLINIC_ADDRESS
    await bus.wait_for(lambda envelopes: any(e.event_name == "CaseSubmitted" for e in envelopes))
    conn = await asyncpg.connect(database)
    try:
        stored = " ".join(str(row) for row in await conn.fetch("SELECT * FROM events"))
        sealed = str(await conn.fetchval("SELECT sealed FROM case_personal_data"))
    finally:
        await conn.close()
    for text, where in ((json.dumps([e.data for e in bus.envelopes], default=str), "the bus"),
                        (stored, "the event store"), (sealed, "the sealed row")):
        assert "Zzyzx-Canary棟" not in text, where
        assert "980-8574" not in text, where

    slip = (await intake.get(f"/cases/{case_id}/personal-data/documents/slip")).json()
    assert slip["fields"] == {"patient_name": PATIENT_NAME, "patient_postal_code": "980-8574",
                              "patient_address": PATIENT_ADDRESS["address"]}
    assert slip["received_documents"] == []
    report = (await intake.get(f"/cases/{case_id}/personal-data/documents/report",
                               headers=bearer("physician", subject="dr-sato"))).json()
    assert report["fields"]["attending_address"] == CLINIC_ADDRESS["address"]
    assert report["fields"]["patient_birth_date"] == "1968-04-01"
    assert "requester_phone" not in report["fields"], "a document reads only what it prints"
    refused = await intake.get(f"/cases/{case_id}/personal-data/documents/slip",
                               headers=bearer("physician", subject="dr-sato"))
    assert refused.status_code == 403, "the slip is the desk's"
    unknown = await intake.get(f"/cases/{uuid.uuid4()}/personal-data/documents/slip")
    assert unknown.status_code == 404

    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    erased = await intake.post(f"/cases/{case_id}/personal-data/erasure", headers=bearer("auditor", subject="a-1"))
    assert erased.status_code == 200, erased.text
    after = (await intake.get(f"/cases/{case_id}")).json()
    assert after["patient"]["postal_address"] == {"postal_code": "***", "address": "***"}
    assert after["attending_physician"]["institution_address"] == {"postal_code": "***", "address": "***"}
    slip_after = (await intake.get(f"/cases/{case_id}/personal-data/documents/slip")).json()
    assert set(slip_after["fields"].values()) == {"***"}
    conn = await asyncpg.connect(database)
    try:
        reads = [row["action"] for row in await conn.fetch(
            "SELECT action FROM access_log WHERE case_id = $1 ORDER BY id", case_id)]
    finally:
        await conn.close()
    assert reads.count("read_personal_data_for_slip") == 2
    assert "read_personal_data_for_report" in reads


async def test_a_malformed_postal_code_is_refused_with_the_field_named(intake: httpx.AsyncClient) -> None:
    response = await intake.post("/cases", json=request_body(patient={"postal_address": {
        "postal_code": "98-08574", "address": "仙台市"}}))
    assert response.status_code == 422
    assert "postal_code" in response.text
