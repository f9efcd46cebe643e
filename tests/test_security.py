"""Authentication and authorization on every route of every service, the access log, and the refusal
to run in production with development keys or default passwords."""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from eventkit.auth import ROLES, mint_development_token
from eventkit.runtime import UnsafeConfiguration
from eventkit.settings import ServiceSettings
from eventkit.testing import allowed_roles, api_routes, bearer, running_app

SERVICES = ("intake", "scheduling", "billing", "reporting")
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/docs/assets/{name}", "/redoc",
              "/openapi.json", "/dashboard"}


def service_app(name: str, **settings: Any) -> FastAPI:
    """The service's app as its bootstrap builds it. An import error fails the test: a swallowed one once left
    this file checking no routes at all."""
    bootstrap = importlib.import_module(f"{name}.bootstrap")
    settings_module = importlib.import_module(f"{name}.settings")
    settings_type = next(value for key, value in vars(settings_module).items()
                         if key.endswith("Settings") and isinstance(value, type)
                         and issubclass(value, ServiceSettings) and value is not ServiceSettings)
    app: FastAPI = bootstrap.build(settings_type(**settings))
    return app




def protected_routes() -> Iterator[tuple[str, str, str, set[str]]]:
    for name in SERVICES:
        app = service_app(name)
        for route in api_routes(app.routes):
            if route.path not in OPEN_PATHS:
                for method in sorted(route.methods or ()):
                    yield name, method, route.path, allowed_roles(route)


ROUTES = list(protected_routes())


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


SECURITY_DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def documented_route_roles() -> dict[tuple[str, str, str], set[str]]:
    """The table under "Roles of every route" in docs/security.md: (service, method, path) -> roles."""
    text = SECURITY_DOC.read_text(encoding="utf-8")
    section = text.split("### Roles of every route", 1)[1].split("\n#", 1)[0]
    table: dict[tuple[str, str, str], set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isupper() and cells[2].startswith("`"):
            table[(cells[0], cells[1], cells[2].strip("`"))] = {role.strip() for role in cells[3].split(",")}
    return table


def test_every_route_admits_exactly_the_roles_docs_security_md_gives_it() -> None:
    documented = documented_route_roles()
    assert documented, "no route table found in docs/security.md"
    actual = {(name, method, path): roles for name, method, path, roles in ROUTES}
    assert actual == documented


def test_every_route_of_every_service_states_its_roles() -> None:
    assert {name for name, *_ in ROUTES} == set(SERVICES), "every service's routes are found"
    unguarded = [f"{name} {method} {path}" for name, method, path, roles in ROUTES if not roles]
    assert unguarded == []


@pytest.mark.parametrize(("service", "method", "path", "roles"), ROUTES,
                         ids=[f"{s}:{m}:{p}" for s, m, p, _ in ROUTES])
async def test_no_token_is_401_and_each_wrong_role_is_403(service: str, method: str, path: str,
                                                          roles: set[str]) -> None:
    app = service_app(service)
    # No lifespan: authorization is decided before any database or broker is touched.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        url = concrete(path)
        response = await client.request(method, url, json={})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        for role in sorted(set(ROLES) - roles):
            response = await client.request(method, url, json={}, headers=bearer(role))
            assert response.status_code == 403, f"{role}: {response.status_code} {response.text}"


@pytest.mark.parametrize(("token", "reason"), [
    (mint_development_token("s", ["coordinator"], lifetime_seconds=-120), "expired"),
    (mint_development_token("s", ["coordinator"], audience="another-system"), "audience"),
    (mint_development_token("s", ["coordinator"], issuer="https://evil.example"), "issuer"),
    ("not.a.jwt", "malformed"),
    (mint_development_token("", ["coordinator"]), "empty subject"),
    (mint_development_token("  ", ["coordinator"]), "blank subject"),
    (mint_development_token("s", [["coordinator"]]), "a role that is not a string"),  # type: ignore[list-item]
    (mint_development_token("s", ["coordinator"], lifetime_seconds=12 * 3600 + 60), "longer than 12 hours"),
    (mint_development_token("s", ["coordinator"], lifetime_seconds=10 * 365 * 86400), "ten years"),
    (mint_development_token("service:billing", ["coordinator"]), "a service acting as a person"),
])
async def test_bad_tokens_are_refused(token: str, reason: str) -> None:
    app = service_app("intake")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/cases", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (401, 403), reason
    assert response.status_code == (403 if reason.startswith("a service") else 401), f"{reason}: {response.text}"


async def test_a_token_signed_by_another_key_is_refused() -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    genuine = jwt.decode(mint_development_token("s", ["coordinator"]), options={"verify_signature": False})
    forged = jwt.encode(genuine, pem, algorithm="RS256")
    app = service_app("intake")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/cases", headers={"Authorization": f"Bearer {forged}"})).status_code == 401


def test_production_profile_refuses_development_keys_and_default_passwords(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PROFILE", "production")
    with pytest.raises(UnsafeConfiguration, match="development key") as refusal:
        service_app("intake")
    for name in ("INTAKE_RABBITMQ_PASSWORD", "INTAKE_DATABASE_PASSWORD", "INTAKE_ACCESS_LOG_KEY",
                 "INTAKE_SEARCH_INDEX_KEY"):
        assert f"{name} is not set" in str(refusal.value)
    monkeypatch.setenv("JWT_JWKS_URL", "https://idp.hospital.example/.well-known/jwks.json")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://rabbitmq:5672/")
    monkeypatch.setenv("INTAKE_DATABASE_URL", "postgresql://db:5432/intake")
    for name, weak in (("INTAKE_RABBITMQ_PASSWORD", "guest"), ("INTAKE_DATABASE_PASSWORD", "postgres")):
        monkeypatch.setenv(name, weak)
        with pytest.raises(UnsafeConfiguration, match=f"{name} is not set"):
            service_app("intake")
    monkeypatch.setenv("INTAKE_RABBITMQ_PASSWORD", "Kx9-long-secret")
    monkeypatch.setenv("INTAKE_DATABASE_PASSWORD", "Qz7-long-secret")
    monkeypatch.setenv("INTAKE_ACCESS_LOG_KEY", "Hm4-long-secret-key")
    monkeypatch.setenv("INTAKE_SEARCH_INDEX_KEY", "Sx2-long-search-index-key")
    with pytest.raises(UnsafeConfiguration, match="CASE_KEY_ENCRYPTION_KEY is the repository's development key"):
        service_app("intake")
    monkeypatch.setenv("CASE_KEY_ENCRYPTION_KEY", "c2VjcmV0LWtleS1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=")
    settings = service_app("intake").state.runtime.settings
    assert settings.rabbitmq_url == "amqp://intake:Kx9-long-secret@rabbitmq:5672/"
    assert settings.database_url == "postgresql://intake_app:Qz7-long-secret@db:5432/intake"


async def test_reading_a_case_is_in_the_access_log_only_auditors_read_it_and_nobody_changes_it(
        database: str, rabbitmq_url: str) -> None:
    from intake.bootstrap import build
    from intake.settings import IntakeSettings

    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    async with running_app(build(settings)) as intake:
        created = await intake.post("/cases", headers=bearer("coordinator", subject="coord-1"), json={
            "requester": {"relationship": "self", "name": "A"}, "patient": {"name": "A", "birth_date": "1970-01-01"},
            "mode": "online", "department": "hematology", "question": "q",
            "attending_physician": {"name": "B", "institution": "C", "consents": True},
            "wants_treatment_here": False, "complaint_or_litigation": False})
        case_id = created.json()["case_id"]
        await intake.get(f"/cases/{case_id}", headers=bearer("physician", subject="dr-9"))
        await intake.get(f"/cases/{case_id}", headers=bearer("coordinator", subject="coord-1"))
        assert (await intake.get("/audit/access-log", headers=bearer("coordinator"))).status_code == 403
        log = (await intake.get("/audit/access-log", params={"case_id": case_id},
                                headers=bearer("auditor", subject="audit-1"))).json()["entries"]
        assert [(e["actor_id"], e["actor_role"], e["action"]) for e in log] == [
            ("coord-1", "coordinator", "read_case_personal_data"), ("dr-9", "physician", "read_case_personal_data")]
        verified = (await intake.get("/audit/access-log/verify", headers=bearer("auditor"))).json()
        # The two reads, the coordinator refused the log, the auditor's listing of it.
        assert (verified["intact"], verified["checked"], verified["broken_at_id"]) == (True, 4, None)

        conn = await asyncpg.connect(database)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE access_log SET actor_id = 'someone-else'")
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("DELETE FROM access_log")
            # Even a superuser who disables the guard cannot hide the change: the chain breaks.
            await conn.execute("ALTER TABLE access_log DISABLE TRIGGER access_log_no_change")
            await conn.execute("UPDATE access_log SET actor_id = 'someone-else' WHERE actor_id = 'dr-9'")
        finally:
            await conn.close()
        verified = (await intake.get("/audit/access-log/verify", headers=bearer("auditor"))).json()
        assert verified["intact"] is False


async def test_erasing_a_case_key_after_retention_masks_its_personal_data_and_keeps_history(
        database: str, rabbitmq_url: str) -> None:
    from datetime import UTC, datetime

    from eventkit.testing import EventCollector
    from intake.bootstrap import build
    from intake.settings import IntakeSettings

    now = [datetime(2026, 12, 1, 1, 0, tzinfo=UTC)]
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    bus = await EventCollector(rabbitmq_url, "intake.PersonalDataErased.*").start()
    try:
        async with running_app(build(settings, clock=lambda: now[0]), headers=bearer()) as intake:
            created = await intake.post("/cases", json={
                "requester": {"relationship": "self", "name": "Erasable Person", "phone": "090-0000-1111"},
                "patient": {"name": "Erasable Person", "birth_date": "1950-02-03"}, "mode": "in_person",
                "department": "nephrology", "question": "dialysis?",
                "attending_physician": {"name": "Dr B", "institution": "C", "consents": True},
                "wants_treatment_here": False, "complaint_or_litigation": False})
            case_id = created.json()["case_id"]
            erase = f"/cases/{case_id}/personal-data/erasure"
            approve = f"{erase}/approval"
            first, second = bearer("privacy_officer", subject="po-1"), bearer("privacy_officer", subject="audit-7")
            for role in ("coordinator", "auditor"):
                assert (await intake.post(erase, headers=bearer(role))).status_code == 403
            early = await intake.post(erase, headers=first)
            assert early.status_code == 409
            assert "retention period runs until 2031-" in early.json()["detail"]

            now[0] = datetime(2032, 1, 5, 1, 0, tzinfo=UTC)
            unrequested = await intake.post(approve, headers=second)
            assert (unrequested.status_code, unrequested.json()["code"]) == (409, "not_requested")
            requested = await intake.post(erase, headers=first)
            assert requested.status_code == 202, requested.text
            assert requested.json()["events"] == []
            assert requested.json()["erasure_requested_by"] == "po-1"
            assert (await intake.post(erase, headers=second)).status_code == 409  # already waiting
            assert (await intake.get(f"/cases/{case_id}")).json()["patient"]["name"] == "Erasable Person"
            own = await intake.post(approve, headers=first)
            assert (own.status_code, own.json()["code"]) == (409, "own_request")
            erased = await intake.post(approve, headers=second)
            assert erased.status_code == 200, erased.text
            assert erased.json()["events"] == ["PersonalDataErased"]
            view = (await intake.get(f"/cases/{case_id}")).json()
            assert view["patient"]["name"] == view["requester"]["phone"] == view["question"] == "***"
            assert view["personal_data_erased_on"] == "2032-01-05"
            assert (await intake.post(erase, headers=first)).status_code == 409
            assert (await intake.post(approve, headers=first)).status_code == 409

            runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
            assert await runtime.store.rebuild_projections() == 3  # submitted, consent, erased: history intact
            rebuilt = (await intake.get(f"/cases/{case_id}")).json()
            assert rebuilt["patient"]["name"] == "***"
            assert rebuilt["status"] == view["status"]
            conn = await asyncpg.connect(database)
            try:
                sealed = await conn.fetchval("SELECT sealed FROM case_personal_data WHERE case_id = $1",
                                             uuid.UUID(case_id))
                assert sealed is not None
                assert b"Erasable" not in sealed
                assert await conn.fetchval("SELECT erased_by FROM case_keys WHERE case_id = $1", case_id) == "audit-7"
            finally:
                await conn.close()
            (published,) = await bus.wait_count(1)
            assert published.data == {"case_id": case_id, "erased_on": "2032-01-05"}
    finally:
        await bus.stop()


async def test_oversized_bodies_are_refused_with_413() -> None:
    app = service_app("intake")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/cases", content=b"{" + b" " * 200_000 + b"}", headers={
            **bearer("coordinator"), "content-type": "application/json"})
        assert response.status_code == 413

        async def stream() -> Any:
            for _ in range(100):
                yield b" " * 1024

        response = await client.post("/cases", content=stream(), headers={
            **bearer("coordinator"), "content-type": "application/json"})
        assert response.status_code == 413
