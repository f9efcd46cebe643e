"""Signing in against a real OpenID provider run by the test (the npm `oidc-provider` package, in
services/desk/tests/node): authorization code flow with PKCE, the tokens kept on the desk's side, the
services verifying the provider's access token with its published keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from desk.testing import NODE_TOOLS, console
from eventkit.testing import fetch, free_port

CLIENT_ID = "secondopinion-desk-console"
CLIENT_SECRET = "a-test-only-client-secret"
AUDIENCE = "https://api.secondopinion.test"  # a resource indicator is an absolute URI (RFC 8707)


@asynccontextmanager
async def identity_provider(redirect_uri: str, access_token_seconds: int = 3600) -> AsyncIterator[str]:
    if not (NODE_TOOLS / "node_modules" / "oidc-provider").exists():
        pytest.fail(f"oidc-provider is not installed: run `npm ci --prefix {NODE_TOOLS}` (make test does)")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_TOOLS / "idp.mjs"), str(port), CLIENT_ID, CLIENT_SECRET, redirect_uri, AUDIENCE,
        str(access_token_seconds),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        assert line.startswith(b"listening"), line
        yield f"http://localhost:{port}"
    finally:
        process.terminate()
        await process.wait()


async def test_staff_sign_in_at_the_identity_provider_and_the_services_accept_its_token(
        rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    desk_port = free_port()
    desk_url = f"http://localhost:{desk_port}"
    # Access tokens live 40 s and are renewed in their last 38: each request after the first seconds renews one.
    async with identity_provider(f"{desk_url}/sign-in/callback", access_token_seconds=40) as issuer:
        # The four services trust the provider's keys, as in production.
        monkeypatch.setenv("JWT_JWKS_URL", f"{issuer}/jwks")
        monkeypatch.setenv("JWT_ISSUER", issuer)
        monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
        async with console(rabbitmq_url, desk_port=desk_port, OIDC_ISSUER=issuer, OIDC_CLIENT_ID=CLIENT_ID,
                           OIDC_CLIENT_SECRET=CLIENT_SECRET, OIDC_RESOURCE=AUDIENCE, DESK_PUBLIC_URL=desk_url,
                           DESK_TOKEN_RENEW_BEFORE_SECONDS=38) as c:
            page = await c.page()
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            await page.goto(f"{c.url}/sign-in")
            await expect(page.locator('input[name="staff_id"]')).to_have_count(0)  # no development sign-in
            await page.get_by_role("link", name="病院の認証でサインイン").click()
            await page.locator('input[name="login"]').fill("coord-oidc")
            await page.locator('input[name="password"]').fill("any")
            await page.get_by_role("button", name="Sign-in").click()
            await page.get_by_role("button", name="Continue").click()
            await expect(page.locator(".person")).to_have_text("受付 桜（コーディネーター）")
            await expect(page.get_by_role("heading", name="業務一覧")).to_be_visible()
            authorization = next(url for url in asked if url.startswith(f"{issuer}/auth"))
            assert "code_challenge_method=S256" in authorization
            assert "code_challenge=" in authorization
            assert all("access_token" not in url and "id_token" not in url for url in asked)
            cookies = await page.context.cookies()
            [session] = await fetch(c.desk_database,
                                    "SELECT subject, roles, sealed_tokens, token_expires_at FROM desk_sessions")
            session_expires_at = session["token_expires_at"]
            assert session_expires_at < datetime.now(UTC) + timedelta(seconds=41), "the provider's short-lived token"
            assert (session["subject"], json.loads(session["roles"])) == ("coord-oidc", ["coordinator"])
            assert "eyJ" not in session["sealed_tokens"], "the provider's tokens are kept sealed"
            [member] = await fetch(c.desk_database, "SELECT staff_id, display_name, roles FROM desk_staff")
            assert (member["staff_id"], member["display_name"], json.loads(member["roles"])) == (
                "coord-oidc", "受付 桜", ["coordinator"]), "pages name them by the provider's name claim"
            assert not [cookie for cookie in cookies if "eyJ" in cookie["value"]], "the browser holds no token"

            # The services accept the provider's token: a case is taken through the pages.
            await page.get_by_role("link", name="新規受付（電話）").click()
            await page.locator("#patient_name").fill("認証 太郎")
            await page.locator("#patient_birth_date").fill("1980/01/01")
            await page.get_by_label("診療科").select_option(label="循環器内科")
            await page.get_by_label("相談内容").fill("確認")
            await page.locator("#attending_name").fill("主治 医")
            await page.locator("#attending_institution").fill("医院")
            await page.get_by_label("主治医が同意している").check()
            await page.get_by_role("button", name="受け付ける").click()
            await expect(page.locator(".flash")).to_contain_text("記録しました")
            await expect(page.locator("#status")).to_have_text("受付")

            # The provider's refresh token renewed the access token (rotated each time) without a new sign-in,
            # and the services accept the renewed one.
            await asyncio.sleep(2.5)
            await page.reload()
            await expect(page.locator("#status")).to_have_text("受付")
            [renewed] = await fetch(c.desk_database, "SELECT sealed_tokens, token_expires_at FROM desk_sessions")
            assert renewed["sealed_tokens"] != session["sealed_tokens"]
            assert renewed["token_expires_at"] > session_expires_at

            await page.get_by_role("button", name="サインアウト").click()
            assert await fetch(c.desk_database, "SELECT 1 FROM desk_sessions") == []

            # Someone the provider knows but who holds no desk role is not let in.
            other = await c.page()
            await other.goto(f"{c.url}/sign-in/oidc")
            await other.locator('input[name="login"]').fill("nobody")
            await other.locator('input[name="password"]').fill("any")
            await other.get_by_role("button", name="Sign-in").click()
            await other.get_by_role("button", name="Continue").click()
            await expect(other.locator(".refusal")).to_contain_text("役割が割り当てられていません")
