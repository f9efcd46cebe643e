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
from fastapi import HTTPException

from eventkit.service_identity import intake_disclosure
from eventkit.testing import EventCollector, SettableClock, assert_valid, bearer, erase_personal_data, running_app
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
    accepted = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept", "physician": "dr-sato"},
                                headers=bearer("physician", subject="dr-sato"))
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
    # The coordinator did the desk's steps, the signed-in physician the screening.
    assert [e.actorid for e in envelopes] == ["coord-12"] * 6 + ["dr-sato"]
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
    decision = {"decision": "decline", "reasons": ["declined_by_specialist"]}
    response = await intake.post(f"/cases/{case['case_id']}/screening", json=decision,
                                 headers=bearer("physician", subject="dr-x"))
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
    not_ready = await intake.post(f"/cases/{case['case_id']}/screening", json={"decision": "accept"})
    assert not_ready.status_code == 409
    assert not_ready.json()["reasons"] == ["document:application_form", "document:referral_letter",
                                           "document:test_results"]
    assert (await post_document(intake, case["case_id"], "x-ray-on-papyrus")).status_code == 422
    assert (await intake.get("/cases/not-a-uuid")).status_code == 422
    assert await event_count(database) == before
    await intake.post(f"/cases/{case['case_id']}/withdrawal", json={"reason": "patient_request"})
    after_withdrawal = await event_count(database)
    again = await intake.post(f"/cases/{case['case_id']}/withdrawal", json={"reason": "patient_request"})
    assert again.status_code == 409
    assert "withdrawn" in again.json()["detail"]
    assert await event_count(database) == after_withdrawal


async def test_a_case_is_not_accepted_without_its_test_materials(
        intake: httpx.AsyncClient, database: str) -> None:
    case_id = (await submit(intake))["case_id"]
    for kind in ("application_form", "referral_letter"):
        assert (await post_document(intake, case_id, kind)).status_code == 201
    view = (await intake.get(f"/cases/{case_id}")).json()
    assert (view["status"], view["missing_documents"]) == ("awaiting_documents", ["test_results"])
    before = await event_count(database)
    refused = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept", "physician": "dr-sato"},
                                headers=bearer("physician", subject="dr-sato"))
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_ready"
    assert refused.json()["reasons"] == ["document:test_results"]
    assert "test_results" in refused.json()["detail"]
    assert await event_count(database) == before
    materials = await post_document(intake, case_id, "test_results")
    assert materials.json()["status"] == "screening"
    accepted = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept", "physician": "dr-sato"},
                                 headers=bearer("physician", subject="dr-sato"))
    assert accepted.json()["status"] == "accepted", accepted.text


async def test_a_second_consent_form_is_recorded_as_a_copy_and_verifies_nothing_again(
        intake: httpx.AsyncClient, bus: EventCollector) -> None:
    case_id = (await submit(intake, requester={"relationship": "family", "name": "Taro Zzyzx"}))["case_id"]
    first = (await post_document(intake, case_id, "consent_form")).json()
    assert first["events"] == ["DocumentReceived", "ConsentVerified"]
    assert first["copy_of"] is None
    second = (await post_document(intake, case_id, "consent_form")).json()
    assert second["events"] == ["DocumentReceived"]
    assert second["copy_of"] == first["document_id"]
    view = (await intake.get(f"/cases/{case_id}")).json()
    assert [(d["kind"], d["copy_of"]) for d in view["documents"]] == [
        ("consent_form", None), ("consent_form", first["document_id"])]
    envelopes = await bus.wait_count(4)
    assert [e.event_name for e in envelopes] == ["CaseSubmitted", "DocumentReceived", "ConsentVerified",
                                                  "DocumentReceived"]
    assert envelopes[1].data["copy_of"] is None
    assert envelopes[3].data["copy_of"] == first["document_id"]
    for envelope in envelopes:
        assert_valid(envelope)
    runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    await runtime.store.rebuild_projections()
    assert (await intake.get(f"/cases/{case_id}")).json()["documents"] == view["documents"]
    third = (await post_document(intake, case_id, "consent_form")).json()
    assert third["copy_of"] == first["document_id"], "after a rebuild a copy still names the first"


async def test_the_department_catalogue_lists_the_departments_taking_requests_with_their_names(
        database: str, rabbitmq_url: str) -> None:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url,
                              INTAKE_DEPARTMENTS=["cardiology", "pediatrics"])
    async with running_app(build(settings), headers=STAFF) as client:
        listed = await client.get("/departments")
        assert listed.status_code == 200, listed.text
        assert listed.json()["departments"] == [
            {"code": "cardiology", "name_ja": "循環器内科", "name_en": "Cardiology"},
            {"code": "pediatrics", "name_ja": "小児科", "name_en": "Pediatrics"}]
        assert (await client.get("/departments", headers={"Authorization": ""})).status_code == 401
        for role in ("coordinator", "physician", "cashier", "auditor", "privacy_officer"):  # all the desk's roles
            assert (await client.get("/departments", headers=bearer(role))).status_code == 200, role
        assert (await client.get("/departments", headers=bearer("integration"))).status_code == 403


def test_a_department_without_a_name_in_the_catalogue_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not in the department catalogue: astrology"):
        IntakeSettings(INTAKE_DEPARTMENTS=["cardiology", "astrology"])


async def test_a_department_given_by_its_name_gets_422_naming_the_code_and_every_code(
        intake: httpx.AsyncClient, database: str) -> None:
    response = await intake.post("/cases", json=request_body(department="循環器内科"))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "department"]
    assert "for 循環器内科 use 'cardiology'" in error["msg"]
    assert "pediatrics" in error["msg"]
    assert "String should match pattern" not in error["msg"]
    unknown = (await intake.post("/cases", json=request_body(department="Astro Logy"))).json()["detail"][0]["msg"]
    assert "'Astro Logy' is not a department code. Department codes: cardiology, " in unknown
    assert await event_count(database) == 0


JA = {"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"}


async def test_with_accept_language_ja_every_refusal_reads_in_japanese_with_the_same_code_and_reasons(
        intake: httpx.AsyncClient, database: str) -> None:
    case_id = (await submit(intake))["case_id"]
    screening = {"decision": "accept", "physician": "dr-sato"}
    signed_in = bearer("physician", subject="dr-sato")
    english = await intake.post(f"/cases/{case_id}/screening", json=screening, headers=signed_in)
    japanese = await intake.post(f"/cases/{case_id}/screening", json=screening, headers={**signed_in, **JA})
    assert (english.status_code, japanese.status_code) == (409, 409)
    assert english.json()["detail"].startswith("the case cannot be accepted yet: ")
    assert japanese.json()["detail"].startswith("必要なものがそろっていないため、まだ実行できません。")
    assert japanese.json()["code"] == english.json()["code"] == "not_ready"
    assert japanese.json()["reasons"] == english.json()["reasons"]

    missing = await intake.get("/cases/00000000-0000-0000-0000-000000000000", headers=JA)
    assert (missing.status_code, missing.json()["detail"]) == (404, "該当するものが見つかりません。")

    invalid = await intake.post("/cases", json=request_body(question="", department="循環器内科"), headers=JA)
    assert invalid.status_code == 422
    errors = {tuple(error["loc"]): error for error in invalid.json()["detail"]}
    assert errors[("body", "question")]["msg"] == "1文字以上で入力してください。"
    assert errors[("body", "question")]["type"] == "string_too_short"
    assert errors[("body", "department")]["msg"].startswith(
        "「循環器内科」は診療科コードではありません（循環器内科 のコードは 'cardiology' です）。"
        "診療科コード: cardiology")
    english_invalid = await intake.post("/cases", json=request_body(question=""))
    assert english_invalid.json()["detail"][0]["msg"] == "String should have at least 1 character"

    no_token = await intake.get("/cases", headers={**JA, "Authorization": ""})
    assert no_token.status_code == 401
    assert no_token.json()["detail"] == "ログインが必要です（有効なアクセストークンがありません）。"
    assert no_token.headers["www-authenticate"] == "Bearer"
    cashier = await intake.get("/cases", headers={**JA, **bearer("cashier")})
    assert (cashier.status_code, cashier.json()["detail"]) == (403, "この操作を行う権限（役割）がありません。")
    assert (await intake.get("/cases", headers=bearer("cashier"))).json()["detail"].startswith(
        "this needs one of the roles")
    nowhere = await intake.get("/no-such-page", headers=JA)
    assert (nowhere.status_code, nowhere.json()["detail"]) == (404, "このアドレスにはページも機能もありません。")
    too_large = await intake.post("/cases", content=b"x" * 100_000, headers={**JA, "Content-Type": "application/json"})
    assert too_large.status_code == 413
    assert too_large.json()["detail"].startswith("送信された内容が大きすぎます。")
    assert too_large.json()["code"] == "too_large"
    assert await event_count(database) == 1 + 1  # the one submission and its consent


async def submit_on(database: str, rabbitmq_url: str, day: str, **changes: Any) -> str:
    """A case submitted on `day` (Tokyo), by an intake whose clock says so."""
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    clock = lambda: datetime.fromisoformat(f"{day}T01:00:00+00:00")  # noqa: E731
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        return str((await submit(client, **changes))["case_id"])


async def test_the_case_list_filters_sorts_by_age_and_pages_with_a_cursor(
        intake: httpx.AsyncClient, database: str, rabbitmq_url: str) -> None:
    cardiology = [await submit_on(database, rabbitmq_url, day) for day in ("2026-11-02", "2026-11-10", "2026-11-20")]
    pediatrics = await submit_on(database, rabbitmq_url, "2026-11-10", department="pediatrics")
    declined = await submit_on(database, rabbitmq_url, "2026-11-15", wants_treatment_here=True)

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [row["case_id"] for row in response.json()["cases"]]

    oldest = await intake.get("/cases", params={"department": "cardiology", "sort": "oldest"})
    assert ids(oldest) == [cardiology[0], cardiology[1], declined, cardiology[2]]
    assert [row["age_days"] for row in oldest.json()["cases"]] == [29, 21, 16, 11]  # today is 1 December
    newest = await intake.get("/cases", params={"department": "cardiology"})
    assert ids(newest) == [cardiology[2], declined, cardiology[1], cardiology[0]]
    assert ids(await intake.get("/cases", params={"department": "pediatrics"})) == [pediatrics]
    assert ids(await intake.get("/cases", params={"status": "declined"})) == [declined]
    either = await intake.get("/cases", params=[("status", "declined"), ("status", "submitted"),
                                                ("department", "cardiology"), ("sort", "oldest")])
    assert ids(either) == [cardiology[0], cardiology[1], declined, cardiology[2]]
    assert ids(await intake.get("/cases", params=[("status", "declined"), ("status", "accepted")])) == [declined]
    in_range = await intake.get("/cases", params={"submitted_from": "2026-11-10", "submitted_to": "2026-11-15",
                                                  "sort": "oldest"})
    assert set(ids(in_range)) == {cardiology[1], pediatrics, declined}
    assert ids(in_range)[-1] == declined

    seen: list[str] = []
    params: dict[str, Any] = {"sort": "oldest", "limit": 2}
    pages = 0
    while True:
        page = await intake.get("/cases", params=params)
        seen += ids(page)
        pages += 1
        if page.json()["next_cursor"] is None:
            break
        params = {**params, "cursor": page.json()["next_cursor"]}
    assert pages == 3
    assert seen == ids(await intake.get("/cases", params={"sort": "oldest"}))
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(("params", "message"), [
    ({"name": "Hanako"}, "Extra inputs are not permitted"),
    ({"status": "lost"}, "Input should be"),
    ({"department": "循環器内科"}, "for 循環器内科 use 'cardiology'"),
    ({"submitted_from": "2026-11-20", "submitted_to": "2026-11-01"}, "`submitted_from` is after `submitted_to`"),
    ({"sort": "alphabetical"}, "Input should be 'newest' or 'oldest'"),
    ({"cursor": "not-a-cursor"}, "not a cursor of this list"),
    ({"cursor": "b2xkZXN0fDIwMjYtMTEtMDJ8MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"},
     "the cursor is of the `oldest` order, not `newest`"),
])
async def test_a_case_list_it_cannot_give_is_refused_with_422(
        intake: httpx.AsyncClient, params: dict[str, str], message: str) -> None:
    response = await intake.get("/cases", params=params)
    assert response.status_code == 422, response.text
    assert message in response.text


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
        decision = {"decision": "decline", "reasons": ["refer_to_general_outpatient"]}
        response = await intake.post(f"/cases/{case['case_id']}/screening", json=decision,
                                     headers=bearer("physician", subject="dr-k"))
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

    for kind in ("application_form", "referral_letter", "test_results"):
        assert (await post_document(intake, case_id, kind)).status_code == 201
    screened = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept"},
                                 headers=bearer("physician", subject="dr-sato"))
    assert screened.status_code == 200, screened.text
    scheduling = intake_disclosure("scheduling", "http://intake", intake._transport)
    reporting = intake_disclosure("reporting", "http://intake", intake._transport)
    desk, physician = STAFF["Authorization"], bearer("physician", subject="dr-sato")["Authorization"]
    number = view["case_number"]
    assert number.startswith("SO-2026-")
    slip = await scheduling.personal_data(uuid.UUID(case_id), "slip", desk)
    assert slip == {"patient_name": PATIENT_NAME, "patient_postal_code": "980-8574",
                    "patient_address": PATIENT_ADDRESS["address"],
                    "received_documents": ["application_form", "referral_letter", "test_results"],
                    "case_number": number}
    report = await reporting.personal_data(uuid.UUID(case_id), "report", physician)
    assert report["case_number"] == number, "the report letter prints the case number too"
    assert report["attending_address"] == CLINIC_ADDRESS["address"]
    assert report["patient_birth_date"] == "1968-04-01"
    assert "requester_phone" not in report, "a document reads only what it prints"
    with pytest.raises(HTTPException) as refused_slip:
        await scheduling.personal_data(uuid.UUID(case_id), "slip", physician)
    assert refused_slip.value.status_code == 403, "the slip is the desk's"
    with pytest.raises(HTTPException) as unknown:
        await scheduling.personal_data(uuid.uuid4(), "slip", desk)
    assert unknown.value.status_code == 404

    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    erased = await erase_personal_data(intake, case_id)
    assert erased.status_code == 200, erased.text
    after = (await intake.get(f"/cases/{case_id}")).json()
    assert after["patient"]["postal_address"] == {"postal_code": "***", "address": "***"}
    assert after["attending_physician"]["institution_address"] == {"postal_code": "***", "address": "***"}
    slip_after = await scheduling.personal_data(uuid.UUID(case_id), "slip", desk)
    assert {value for name, value in slip_after.items() if name not in ("received_documents", "case_number")} \
        == {"***"}
    assert slip_after["case_number"] == number, "the case number is not personal data: never masked"
    conn = await asyncpg.connect(database)
    try:
        reads = [row["action"] for row in await conn.fetch(
            "SELECT action FROM access_log WHERE case_id = $1 ORDER BY id", case_id)]
    finally:
        await conn.close()
    assert reads.count("read_personal_data_for_slip_via_scheduling") == 2
    assert "read_personal_data_for_report_via_reporting" in reads


async def test_a_malformed_postal_code_is_refused_with_the_field_named(intake: httpx.AsyncClient) -> None:
    response = await intake.post("/cases", json=request_body(patient={"postal_address": {
        "postal_code": "98-08574", "address": "仙台市"}}))
    assert response.status_code == 422
    assert "postal_code" in response.text
