"""Schemathesis against every operation of every service's OpenAPI document, over real HTTP to the app running
on a fresh database and vhost. Requests that fit the schema and requests that do not, each with a token for one
of the route's allowed roles, and with path ids both random and of a case (appointment, invoice) the service
knows, never get a 5xx; and the bodies of the responses the documents declare (200, 201, 401, 403, 404, 409,
413, 422) match their schemas, but for a command refused by a rule (see documented_body_conforms)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import httpx
import pytest
import schemathesis
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from billing.domain import invoice_id_for
from eventkit.auth import AuthSettings, TokenVerifier, allow
from eventkit.business_calendar import BusinessCalendar, tokyo_datetime
from eventkit.clock import tokyo_date
from eventkit.events import Actor
from eventkit.runtime import wait_until
from eventkit.testing import bearer, publish_event
from reporting.testing import Case as ReportingCase
from secondopinion_contracts.codes import Mode
from secondopinion_contracts.events.intake import CaseAccepted
from secondopinion_contracts.events.scheduling import SlotConfirmed
from tests.hardening.support import DEEP_RUN, SERVICES, examples, roles_by_operation, service_app, serving

# Per operation: with 57 operations this keeps the four services under about 40 s on two cores.
EXAMPLES_PER_OPERATION = examples(12)


def documented_body_conforms(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Schemathesis' response schema conformance, except for one body shape the documents do not describe: a
    command refused by a rule (eventkit's InvalidCommand) answers 422 with `{"detail": str, "code": "invalid",
    "reasons": [...]}`, while FastAPI documents 422 as its own request-validation error."""
    if response.status_code == 422 and _refused_by_a_rule(response):
        return None
    return response_schema_conformance(ctx, response, case)


def _refused_by_a_rule(response: Response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "invalid" and isinstance(body.get("detail"), str)


CHECKS: list[CheckFunction] = [not_a_server_error, documented_body_conforms]
SEEDER = bearer(subject="fuzz-seed")  # every role: setting up the known ids is not what is tested

pytestmark = pytest.mark.filterwarnings(
    # Schemathesis' own strategies draw from `random`; nothing in this module does.
    "ignore:Do not use the `random` module inside strategies",
)

KnownIds = dict[str, list[str]]
Operation = APIOperation[Any, Any, Any, Any]

INTAKE_CASE = {
    "requester": {"relationship": "self", "name": "Fuzz Patient"},
    "patient": {"name": "Fuzz Patient", "birth_date": "1970-01-01"}, "mode": "online", "department": "hematology",
    "question": "q", "attending_physician": {"name": "Dr B", "institution": "C", "consents": True},
    "wants_treatment_here": False, "complaint_or_litigation": False,
}


async def succeeds(client: httpx.AsyncClient, path: str) -> None:
    async def found() -> bool:
        return (await client.get(path, headers=SEEDER)).status_code == 200

    await wait_until(found, timeout=20)


def consultation_day(weeks_ahead: int = 2) -> date:
    """A business day a little ahead (holidays move, so it is looked up rather than written down)."""
    calendar = BusinessCalendar()
    first = tokyo_date(datetime.now(UTC)) + timedelta(weeks=weeks_ahead)
    return calendar.business_days(first, first + timedelta(days=14))[0]


async def seed_intake(client: httpx.AsyncClient, _: str) -> KnownIds:
    created = await client.post("/cases", json=INTAKE_CASE, headers=SEEDER)
    assert created.status_code == 201, created.text
    return {"case_id": [created.json()["case_id"]]}


async def seed_scheduling(client: httpx.AsyncClient, rabbitmq_url: str) -> KnownIds:
    waiting, booked = uuid.uuid4(), uuid.uuid4()
    for case_id in (waiting, booked):
        await publish_event(rabbitmq_url, CaseAccepted(case_id=case_id, department="cardiology", mode=Mode.IN_PERSON,
                                                       screened_by="dr-screen"))
        await succeeds(client, f"/cases/{case_id}/schedule")
    day = consultation_day().isoformat()
    opened = await client.post("/departments/cardiology/slots", headers=SEEDER, json={
        "physician_id": "dr-sato", "from": day, "to": day, "start_times": ["10:00", "14:00"], "duration_minutes": 60})
    assert opened.status_code == 201, opened.text
    slots = [slot["slot_id"] for slot in opened.json()["opened"]]
    proposed = await client.post(f"/cases/{booked}/proposals", json={"slot_ids": slots}, headers=SEEDER)
    assert proposed.status_code == 201, proposed.text
    confirmed = await client.post(f"/cases/{booked}/appointment", json={"slot_id": slots[0]}, headers=SEEDER)
    assert confirmed.status_code == 201, confirmed.text
    appointment = (await client.get(f"/cases/{booked}/appointment", headers=SEEDER)).json()
    return {"case_id": [str(waiting), str(booked)], "appointment_id": [appointment["appointment_id"]],
            "department": ["cardiology"]}


async def seed_billing(client: httpx.AsyncClient, rabbitmq_url: str) -> KnownIds:
    start = tokyo_datetime(consultation_day(), time(10, 0))
    invoices = []
    for mode in Mode:
        confirmed = SlotConfirmed(case_id=uuid.uuid4(), appointment_id=uuid.uuid4(), slot_id=uuid.uuid4(),
                                  start=start, end=start + timedelta(hours=1), department="cardiology",
                                  physician_id="dr-sato", mode=mode)
        await publish_event(rabbitmq_url, confirmed)
        invoices.append(str(invoice_id_for(confirmed.appointment_id)))
        await succeeds(client, f"/invoices/{invoices[-1]}")
    return {"invoice_id": invoices}


async def seed_reporting(client: httpx.AsyncClient, rabbitmq_url: str) -> KnownIds:
    today = tokyo_date(datetime.now(UTC))
    case = ReportingCase("cardiology", Mode.IN_PERSON)
    flow = [case.submitted(today), case.consent(), *case.documents(today), case.accepted(), case.confirmed(today),
            case.completed(today)]
    for sequence, event in enumerate(flow, start=1):
        await publish_event(rabbitmq_url, event, sequence=sequence)
    await succeeds(client, f"/cases/{case.case_id}/timeline")
    return {"case_id": [str(case.case_id)]}


SEEDS: dict[str, Callable[[httpx.AsyncClient, str], Awaitable[KnownIds]]] = {
    "intake": seed_intake, "scheduling": seed_scheduling, "billing": seed_billing, "reporting": seed_reporting,
}


def cases_for(operation: Operation, known: KnownIds) -> st.SearchStrategy[Case[Any]]:
    """Valid and invalid requests; where the path names ids, also ones with ids the service knows."""
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    names = [parameter.name for parameter in operation.path_parameters]
    if names and all(name in known for name in names):
        for values in _combinations([known[name] for name in names]):
            strategies += [operation.as_strategy(generation_mode=mode, path_parameters=dict(zip(names, values,
                                                                                                 strict=True)))
                           for mode in GenerationMode]
    return st.one_of(*strategies)


def _combinations(choices: list[list[str]]) -> list[list[str]]:
    combined: list[list[str]] = [[]]
    for options in choices:
        combined = [[*prefix, option] for prefix in combined for option in options]
    return combined


def fuzz(operation: Operation, base_url: str, roles: set[str], known: KnownIds) -> None:
    """One Hypothesis run for the operation (synchronous: requests over HTTP to the app on the test's loop)."""
    tokens = [bearer(role, subject=f"fuzz-{role}") for role in sorted(roles)] or [{}]

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=not DEEP_RUN,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], print_blob=False)
    @given(case=cases_for(operation, known), token=st.sampled_from(tokens))
    def call(case: Case[Any], token: dict[str, str]) -> None:
        case.call_and_validate(base_url=base_url, headers=token, checks=CHECKS, timeout=30)

    call()


async def fuzz_served(app: FastAPI, base_url: str, known: KnownIds) -> list[str]:
    """Every operation of the served app's OpenAPI document fuzzed; what each one found (empty when nothing)."""
    roles = roles_by_operation(app)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        document = (await client.get("/openapi.json")).json()
    operations = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is broken
        operations.append(result.ok())
    assert operations, "no operations in the document"
    failures: list[str] = []

    def run_all() -> None:
        for operation in operations:
            try:
                fuzz(operation, base_url, roles[(operation.method.upper(), operation.path)], known)
            except (Exception, BaseExceptionGroup) as error:  # each operation's finding, not only the first
                failures.append(f"{operation.label}: {error}")

    await asyncio.to_thread(run_all)
    return failures


@pytest.mark.parametrize("service", SERVICES)
async def test_no_request_gets_a_server_error(service: str, database: str, rabbitmq_url: str) -> None:
    async with service_app(service, database, rabbitmq_url) as app, serving(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            known = await SEEDS[service](client, rabbitmq_url)
        failures = await fuzz_served(app, base_url, known)
    assert failures == [], "\n\n".join(failures)


async def test_the_fuzzing_gets_past_authentication_and_reports_a_server_error() -> None:
    """The harness can fail: a route that fails only for a caller holding its role is found."""
    planted = FastAPI()
    planted.state.token_verifier = TokenVerifier(AuthSettings())

    @planted.get("/things/{thing_id}")
    async def planted_fault(thing_id: uuid.UUID, _: Annotated[Actor, Depends(allow("cashier"))]) -> dict[str, str]:
        raise RuntimeError("a planted fault")

    async with serving(planted) as base_url:
        failures = await fuzz_served(planted, base_url, {})
    assert len(failures) == 1
    assert failures[0].startswith("GET /things/{thing_id}: ")
    assert "Server error" in failures[0]
