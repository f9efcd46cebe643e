"""The console's own defences, against the app with its real session database (no services needed): CSRF on
every state-changing request, the hardening headers, the session cookie, idle timeout and sign-out, sessions
that survive a restart and work on a second replica, role guards, and the production profile's refusals."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from desk.bootstrap import CONTENT_SECURITY_POLICY, build
from desk.sessions import SESSION_COOKIE
from desk.testing import desk_settings
from eventkit.runtime import UnsafeConfiguration
from eventkit.testing import api_routes, fetch

BASE = "https://desk.test"


@asynccontextmanager
async def desk(database: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = build(desk_settings(database, DESK_PUBLIC_URL=BASE, **overrides))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, follow_redirects=False) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the form carries a CSRF token"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, staff_id: str = "coord-1", *roles: str) -> str:
    page = await client.get("/sign-in")
    answer = await client.post("/sign-in/development", data={
        "csrf_token": csrf_of(page), "staff_id": staff_id, "roles": list(roles or ("coordinator",))})
    assert answer.status_code == 303, answer.text
    return answer.cookies[SESSION_COOKIE]


async def test_every_state_changing_route_checks_the_csrf_token(database: str) -> None:
    app = build(desk_settings(database))
    unchecked = []
    for route in api_routes(app.routes):
        if (route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            calls = {getattr(d.call, "checks_csrf", False) for d in route.dependant.dependencies}
            if True not in calls:
                unchecked.append(route.path)
    assert not unchecked, f"state-changing routes without the CSRF check: {unchecked}"


async def test_a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing(database: str) -> None:
    async with desk(database) as client:
        # Signed out: the sign-in form without its token.
        refused = await client.post("/sign-in/development", data={"staff_id": "coord-1", "roles": ["coordinator"]})
        assert refused.status_code == 403
        assert SESSION_COOKIE not in refused.cookies
        await sign_in(client)
        form = await client.get("/cases/new")
        assert form.status_code == 200
        for token in ("", "forged", csrf_of(await client.get("/sign-in"))):
            answer = await client.post("/language", data={"csrf_token": token, "lang": "en"})
            assert answer.status_code == 403, token
        cross_site = await client.post("/language", data={"csrf_token": csrf_of(form), "lang": "en"},
                                       headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        [row] = await fetch(database, "SELECT lang FROM desk_sessions")
        assert row["lang"] == "ja", "nothing changed"
        accepted = await client.post("/language", data={"csrf_token": csrf_of(form), "lang": "en"})
        assert accepted.status_code == 303
        assert "Work queue" in (await client.get("/queue")).text


async def test_pages_carry_the_hardening_headers_and_no_inline_script(database: str) -> None:
    async with desk(database) as client:
        page = await client.get("/sign-in")
        headers = page.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["cache-control"] == "no-store"
        await sign_in(client)
        for path in ("/queue", "/cases/new", "/slots", "/find", "/cases"):
            html = (await client.get(path)).text
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {path}"
            assert not re.search(r"\son[a-z]+=", html), f"inline event handler on {path}"
            assert not re.search(r"\sstyle=", html), f"inline style on {path}"


async def test_the_session_cookie_is_httponly_secure_samesite_and_holds_no_token(database: str) -> None:
    async with desk(database) as client:
        page = await client.get("/sign-in")
        answer = await client.post("/sign-in/development", data={
            "csrf_token": csrf_of(page), "staff_id": "coord-1", "roles": ["coordinator"]})
        [cookie] = [c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)]
        assert "HttpOnly" in cookie
        assert "Secure" in cookie
        assert "SameSite=lax" in cookie
        session_id = answer.cookies[SESSION_COOKIE]
        [row] = await fetch(database, "SELECT id_hash, sealed_tokens FROM desk_sessions")
        assert row["id_hash"] != session_id, "the database holds the id's hash only"
        assert "eyJ" not in row["sealed_tokens"], "the bearer token is sealed, not kept as it is"
        assert "eyJ" not in cookie, "the browser never holds a token"


async def test_a_session_sealed_with_another_key_is_no_session(database: str) -> None:
    async with desk(database) as first:
        session_id = await sign_in(first)
    other_key = base64.b64encode(b"k" * 32).decode()
    async with desk(database, DESK_SESSION_KEY=other_key) as rekeyed:
        rekeyed.cookies.set(SESSION_COOKIE, session_id, domain="desk.test")
        assert (await rekeyed.get("/cases/new")).headers["location"] == "/sign-in"


async def test_sessions_survive_a_restart_and_work_on_a_second_replica(database: str) -> None:
    async with desk(database) as first:
        session_id = await sign_in(first)
    async with desk(database) as restarted, desk(database) as replica:
        for client in (restarted, replica):
            client.cookies.set(SESSION_COOKIE, session_id, domain="desk.test")
            page = await client.get("/cases/new")
            assert page.status_code == 200, "the same session is recognised after the restart and on both replicas"


async def test_an_idle_session_ends_and_sign_out_ends_it_at_once(database: str) -> None:
    async with desk(database, DESK_IDLE_TIMEOUT_MINUTES=30) as client:
        await sign_in(client)
        assert (await client.get("/cases/new")).status_code == 200
        await fetch(database, "UPDATE desk_sessions SET last_seen_at = now() - $1::interval", timedelta(minutes=31))
        idle = await client.get("/cases/new")
        assert (idle.status_code, idle.headers["location"]) == (303, "/sign-in")
        assert await fetch(database, "SELECT 1 FROM desk_sessions") == []

        await sign_in(client)
        form = await client.get("/cases/new")
        signed_out = await client.post("/sign-out", data={"csrf_token": csrf_of(form)})
        assert signed_out.status_code == 303
        assert await fetch(database, "SELECT 1 FROM desk_sessions") == []
        assert (await client.get("/cases/new")).status_code == 303


async def test_a_page_left_open_does_not_keep_an_idle_person_signed_in(database: str) -> None:
    async with desk(database, DESK_IDLE_TIMEOUT_MINUTES=30) as client:
        await sign_in(client)
        await fetch(database, "UPDATE desk_sessions SET last_seen_at = now() - $1::interval", timedelta(minutes=29))
        polled = await client.get("/board/live")  # what static/live.js asks every few seconds
        assert polled.status_code == 200
        [row] = await fetch(database, "SELECT last_seen_at < now() - interval '28 minutes' AS idle FROM desk_sessions")
        assert row["idle"], "the live check restarted the idle clock"
        await fetch(database, "UPDATE desk_sessions SET last_seen_at = now() - $1::interval", timedelta(minutes=31))
        assert (await client.get("/board/live")).status_code == 401


async def test_a_page_of_another_role_is_refused(database: str) -> None:
    async with desk(database) as client:
        await sign_in(client, "cash-1", "cashier")
        for path in ("/queue", "/cases/new", "/screening", "/audit", "/slots", "/privacy"):
            assert (await client.get(path)).status_code == 403, path
        form = await client.get("/counter")
        assert form.status_code == 200
        posted = await client.post("/cases/new", data={"csrf_token": csrf_of(form), "patient_name": "x"})
        assert posted.status_code == 403
        assert "権限" in posted.text
        assert (await client.get("/queue")).status_code == 403
    async with desk(database) as signed_out:
        assert (await signed_out.get("/queue")).headers["location"] == "/sign-in"


async def test_the_production_profile_refuses_the_development_sign_in(database: str) -> None:
    production = {"APP_PROFILE": "production", "DESK_DATABASE_URL": database.replace("postgres@", "desk:s3cret@"),
                  "DESK_DATABASE_PASSWORD": "a-runtime-role-password"}
    with pytest.raises(UnsafeConfiguration, match="development sign-in"):
        build(desk_settings(database, DESK_DEVELOPMENT_SIGN_IN=True, OIDC_ISSUER="https://idp.example",
                            OIDC_CLIENT_ID="desk", OIDC_CLIENT_SECRET="x", DESK_PUBLIC_URL=BASE, **production))
    with pytest.raises(UnsafeConfiguration, match="OpenID Connect is not configured"):
        build(desk_settings(database, DESK_PUBLIC_URL=BASE, **production))
    oidc = {"OIDC_ISSUER": "https://idp.example", "OIDC_CLIENT_ID": "desk", "OIDC_CLIENT_SECRET": "x"}
    with pytest.raises(UnsafeConfiguration, match="DESK_SESSION_KEY"):
        build(desk_settings(database, DESK_PUBLIC_URL=BASE, **oidc, **production))
    session_key = base64.b64encode(bytes(range(32))).decode()
    with pytest.raises(UnsafeConfiguration, match="DESK_DATABASE_PASSWORD"):
        build(desk_settings(database, DESK_PUBLIC_URL=BASE, DESK_SESSION_KEY=session_key, **oidc,
                            **{**production, "DESK_DATABASE_PASSWORD": ""}))
    app: FastAPI = build(desk_settings(database, DESK_PUBLIC_URL=BASE, DESK_SESSION_KEY=session_key, **oidc,
                                       **production))
    assert app.state.settings.development_sign_in_enabled is False


async def test_the_desk_connects_as_its_runtime_role_which_owns_nothing(database: str) -> None:
    async with desk(database) as client:
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        assert await sessions.pool.fetchval("SELECT current_user") == "desk_app"
        owned = await fetch(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                      " AND tableowner = 'desk_app'")
        assert owned == []
        assert await sessions.pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        await sign_in(client)
        assert len(await fetch(database, "SELECT 1 FROM desk_sessions")) == 1
