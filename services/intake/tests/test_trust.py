"""Who screens is who signed in, of the case's department; personal data goes out only to the service whose
document needs it, for a staff member whose role prints it; a dump of the database opens no case key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.exceptions import InvalidTag
from fastapi import HTTPException

from eventkit.crypto import open_with
from eventkit.service_identity import ON_BEHALF_OF, IntakeDisclosure, ServiceCredentials
from eventkit.testing import bearer, running_app
from intake.bootstrap import build
from intake.settings import IntakeSettings

DESK = bearer("coordinator", subject="coord-3")
CARDIOLOGIST = bearer("physician", subject="dr-heart", departments=["cardiology"], name="Dr. Heart")
ONCOLOGIST = bearer("physician", subject="dr-onco", departments=["oncology"])
CASHIER = bearer("cashier", subject="cashier-5")


@pytest.fixture
async def intake(database: str, rabbitmq_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    clock = lambda: datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # noqa: E731
    async with running_app(build(settings, clock=clock), headers=DESK) as client:
        yield client


async def case_in_screening(intake: httpx.AsyncClient) -> str:
    created = await intake.post("/cases", json={
        "requester": {"relationship": "self", "name": "Payer Zzyzx"},
        "patient": {"name": "Payer Zzyzx", "birth_date": "1960-05-06"}, "mode": "online",
        "department": "cardiology", "question": "q",
        "attending_physician": {"name": "Dr. B", "institution": "C", "consents": True},
        "wants_treatment_here": False, "complaint_or_litigation": False})
    assert created.status_code == 201, created.text
    case_id: str = created.json()["case_id"]
    for kind in ("application_form", "referral_letter", "test_results"):
        assert (await intake.post(f"/cases/{case_id}/documents",
                                  json={"kind": kind, "received_on": "2026-12-01"})).status_code == 201
    return case_id


async def test_the_screening_records_the_signed_in_physician_of_the_cases_department(
        intake: httpx.AsyncClient) -> None:
    case_id = await case_in_screening(intake)
    screen = f"/cases/{case_id}/screening"
    other_department = await intake.post(screen, json={"decision": "accept"}, headers=ONCOLOGIST)
    assert other_department.status_code == 403
    assert "another department" in other_department.json()["detail"]
    as_someone_else = await intake.post(screen, json={"decision": "accept", "physician": "dr-onco"},
                                        headers=CARDIOLOGIST)
    assert as_someone_else.status_code == 403
    assert "must be you (dr-heart)" in as_someone_else.json()["detail"]
    accepted = await intake.post(screen, json={"decision": "accept"}, headers=CARDIOLOGIST)
    assert accepted.status_code == 200, accepted.text
    runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    (event,) = [e for e in await runtime.store.load(f"case-{case_id}") if e.name == "CaseAccepted"]
    assert event.data.screened_by == "dr-heart"
    assert event.metadata["actor"] == {"id": "dr-heart", "role": "physician"}, event.metadata


def disclosure(intake: httpx.AsyncClient, service: str) -> IntakeDisclosure:
    return IntakeDisclosure("http://intake", ServiceCredentials(service),
                            transport=intake._transport)


async def test_only_billing_with_a_cashier_obtains_the_payer_name_and_only_of_an_accepted_case(
        intake: httpx.AsyncClient, database: str) -> None:
    case_id = await case_in_screening(intake)
    cashier = CASHIER["Authorization"]
    receipt = f"/cases/{case_id}/personal-data/for/receipt"
    # A person's token alone, whatever its role, gets nothing; the key itself is no longer served.
    assert (await intake.get(receipt, headers=CASHIER)).status_code == 403
    assert (await intake.get(f"/cases/{case_id}/personal-data/key", headers=CASHIER)).status_code in (404, 405)
    with pytest.raises(HTTPException) as not_yet:
        await disclosure(intake, "billing").personal_data(uuid.UUID(case_id), "receipt", cashier)
    assert getattr(not_yet.value, "status_code", None) == 409  # not accepted: billing holds no invoice for it
    assert (await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept"},
                              headers=CARDIOLOGIST)).status_code == 200

    fields = await disclosure(intake, "billing").personal_data(uuid.UUID(case_id), "receipt", cashier)
    assert fields == {"payer_name": "Payer Zzyzx"}
    refusals: list[Any] = []
    for service, purpose, person in (("scheduling", "receipt", cashier), ("billing", "receipt", DESK["Authorization"]),
                                     ("billing", "slip", cashier)):
        with pytest.raises(HTTPException) as refused:
            await disclosure(intake, service).personal_data(uuid.UUID(case_id), purpose, person)
        refusals.append(getattr(refused.value, "status_code", None))
    assert refusals == [403, 403, 403]
    service_token = await ServiceCredentials("billing").token()
    no_person = await intake.get(receipt, headers={"Authorization": f"Bearer {service_token}"})
    assert no_person.status_code == 403
    assert ON_BEHALF_OF in no_person.json()["detail"]
    # A service's token does not act as a person on the other routes.
    assert (await intake.get(f"/cases/{case_id}", headers={"Authorization": f"Bearer {service_token}"})
            ).status_code == 403

    log = (await intake.get("/audit/access-log", params={"case_id": case_id},
                            headers=bearer("auditor"))).json()["entries"]
    assert ("cashier-5", "cashier", "read_personal_data_for_receipt_via_billing") in [
        (e["actor_id"], e["actor_role"], e["action"]) for e in log]

    conn = await asyncpg.connect(database)
    try:
        stored = await conn.fetchval("SELECT key FROM case_keys WHERE case_id = $1", case_id)
        sealed = await conn.fetchval("SELECT sealed FROM case_personal_data WHERE case_id = $1", uuid.UUID(case_id))
    finally:
        await conn.close()
    # What the database holds does not open the case's data without the key-encryption key.
    assert len(stored) > 32
    for candidate in (bytes(stored), bytes(stored)[-32:], bytes(stored)[14:46]):
        with pytest.raises((InvalidTag, ValueError)):
            open_with(candidate, case_id, bytes(sealed))
