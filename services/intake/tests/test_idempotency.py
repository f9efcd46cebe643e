"""Idempotency-Key on intake's POSTs (eventkit.idempotency), on the real PostgreSQL: a retried submission is one
case, another body under the same key is refused, one still in flight is 409, and a submission that committed but
was answered 503 is answered with what it recorded when retried."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

import intake.api
from eventkit import idempotency
from eventkit.testing import bearer, running_app
from intake.bootstrap import build
from intake.settings import IntakeSettings

STAFF = bearer(subject="coord-idem")

BODY: dict[str, Any] = {
    "requester": {"relationship": "self", "name": "Hanako Idempotent"},
    "patient": {"name": "Hanako Idempotent", "birth_date": "1968-04-01"},
    "mode": "in_person", "department": "cardiology", "question": "Surgery or catheter?",
    "attending_physician": {"name": "Dr. Sato", "institution": "Minato Clinic", "consents": True},
    "wants_treatment_here": False, "complaint_or_litigation": False,
}


@pytest.fixture
async def intake_client(database: str, rabbitmq_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    clock = lambda: datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # noqa: E731
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield client


async def submissions(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'CaseSubmitted'"))
    finally:
        await conn.close()


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{key}"'}


async def test_the_same_key_and_body_answers_the_first_answer_without_a_second_case(
        intake_client: httpx.AsyncClient, database: str) -> None:
    key = str(uuid.uuid4())
    first = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    again = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await submissions(database) == 1
    # A new key, or no key, is a new request.
    assert (await intake_client.post("/cases", json=BODY, headers=keyed(str(uuid.uuid4())))).status_code == 201
    assert (await intake_client.post("/cases", json=BODY)).status_code == 201
    assert await submissions(database) == 3


async def test_a_key_is_the_callers_own(intake_client: httpx.AsyncClient, database: str) -> None:
    key = str(uuid.uuid4())
    mine = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    theirs = await intake_client.post("/cases", json=BODY, headers={**keyed(key), **bearer(subject="coord-other")})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["case_id"] != theirs.json()["case_id"]
    assert await submissions(database) == 2


async def test_the_same_key_with_another_body_is_422(intake_client: httpx.AsyncClient, database: str) -> None:
    key = str(uuid.uuid4())
    assert (await intake_client.post("/cases", json=BODY, headers=keyed(key))).status_code == 201
    other = await intake_client.post("/cases", json={**BODY, "question": "Another question"}, headers=keyed(key))
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await submissions(database) == 1


async def test_a_malformed_key_is_400(intake_client: httpx.AsyncClient) -> None:
    for bad in ("", "x" * 256, "caf\u00e9"):
        response = await intake_client.post("/cases", json=BODY, headers={b"Idempotency-Key": bad.encode("utf-8")})
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_idempotency_key"


async def test_a_request_still_in_flight_with_the_key_is_409(intake_client: httpx.AsyncClient, database: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    key = str(uuid.uuid4())
    entered, release = asyncio.Event(), asyncio.Event()
    answer = intake.api._result

    async def slow_answer(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await answer(*args, **kwargs)

    monkeypatch.setattr(intake.api, "_result", slow_answer)
    first = asyncio.create_task(intake_client.post("/cases", json=BODY, headers=keyed(key)))
    await asyncio.wait_for(entered.wait(), 10)
    second = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_in_flight"
    assert second.headers["retry-after"] == "1"
    release.set()
    assert (await first).status_code == 201
    assert (await intake_client.post("/cases", json=BODY, headers=keyed(key))).json() == (await first).json()
    assert await submissions(database) == 1


async def test_a_submission_recorded_but_answered_503_answers_what_it_recorded(
        intake_client: httpx.AsyncClient, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ambiguous commit: the case was recorded, then the database went away before the answer was read."""
    key = str(uuid.uuid4())

    async def database_gone(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the database went away after the commit")

    monkeypatch.setattr(intake.api, "_result", database_gone)
    answered = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert answered.status_code == 200, answered.text
    assert answered.json()["code"] == "recorded_before"
    assert answered.json()["events"] == ["CaseSubmitted", "ConsentVerified"]  # a request by the patient
    case_id = answered.json()["case_id"]
    monkeypatch.undo()
    retried = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert retried.json()["case_id"] == case_id
    assert await submissions(database) == 1
    assert (await intake_client.get(f"/cases/{case_id}")).status_code == 200


async def test_a_recorded_submission_whose_key_could_not_be_answered_is_found_by_the_retry(
        intake_client: httpx.AsyncClient, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client got a 503 (the database was gone for the answer and for the key too); its retry with the key
    finds the case it recorded instead of submitting a second one."""
    key = str(uuid.uuid4())

    async def database_gone(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the database went away after the commit")

    monkeypatch.setattr(intake.api, "_result", database_gone)
    monkeypatch.setattr(idempotency, "_recorded_answer", database_gone)
    refused = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert refused.status_code == 503
    monkeypatch.undo()
    retried = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert retried.status_code == 200, retried.text
    assert retried.json()["code"] == "recorded_before"
    assert await submissions(database) == 1


async def test_a_503_that_recorded_nothing_frees_the_key_for_the_retry(
        intake_client: httpx.AsyncClient, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = str(uuid.uuid4())
    async def unavailable(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the database is down")

    store = intake_client._transport.app.state.runtime.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "append", unavailable)
    assert (await intake_client.post("/cases", json=BODY, headers=keyed(key))).status_code == 503
    monkeypatch.undo()
    retried = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert retried.status_code == 201
    assert await submissions(database) == 1


async def test_answers_are_kept_a_day_and_then_the_key_is_new(intake_client: httpx.AsyncClient,
                                                              database: str) -> None:
    key = str(uuid.uuid4())
    first = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '23 hours'")
        assert (await intake_client.post("/cases", json=BODY, headers=keyed(key))).json() == first.json()
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    finally:
        await conn.close()
    later = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert await submissions(database) == 2


async def test_a_document_retried_with_its_key_is_received_once(intake_client: httpx.AsyncClient,
                                                                database: str) -> None:
    case_id = (await intake_client.post("/cases", json=BODY)).json()["case_id"]
    key = keyed(str(uuid.uuid4()))
    document = {"kind": "referral_letter", "received_on": "2026-12-01"}
    first = await intake_client.post(f"/cases/{case_id}/documents", json=document, headers=key)
    again = await intake_client.post(f"/cases/{case_id}/documents", json=document, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["document_id"] == first.json()["document_id"]
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'DocumentReceived'") == 1
    finally:
        await conn.close()


async def test_a_request_that_crashed_leaves_its_key_free_for_the_retry(
        intake_client: httpx.AsyncClient, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = str(uuid.uuid4())

    async def bug(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug before anything was recorded")

    store = intake_client._transport.app.state.runtime.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "append", bug)
    with pytest.raises(RuntimeError):  # in process the error reaches the client; uvicorn would answer 500
        await intake_client.post("/cases", json=BODY, headers=keyed(key))
    monkeypatch.undo()
    retried = await intake_client.post("/cases", json=BODY, headers=keyed(key))
    assert retried.status_code == 201, retried.text
    assert await submissions(database) == 1
