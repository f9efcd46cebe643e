"""Signing in and out. Production: OpenID Connect authorization code flow with PKCE against the hospital's
identity provider (Authlib), the tokens kept in the session row. Development only: pick a name and roles,
and the development key signs the token (the production profile refuses to start with it)."""

from __future__ import annotations

import logging
import secrets
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib announces a move to the httpx2 package; its client works with httpx as installed.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from desk import forms
from desk.sessions import SESSION_COOKIE, Tokens
from desk.settings import DeskSettings
from desk.web import Form, current_session, render, set_cookie, staff_names, store
from eventkit.auth import STAFF_ROLES, mint_development_token
from eventkit.staff import DEFAULT_DEPARTMENTS

log = logging.getLogger(__name__)
router = APIRouter()

DEVELOPMENT_TOKEN_SECONDS = 8 * 3600
# Names offered on the development sign-in page (any other may be typed).
DEVELOPMENT_STAFF = (("coord-1", "受付 花子"), ("dr-sato", "佐藤 医師"), ("dr-kato", "加藤 医師"),
                     ("cash-1", "会計 太郎"), ("audit-1", "監査 次郎"), ("privacy-1", "個人情報 三郎"),
                     ("privacy-2", "個人情報 四郎"))


def settings_of(request: Request) -> DeskSettings:
    settings: DeskSettings = request.app.state.settings
    return settings


async def _start_session(request: Request, *, subject: str, name: str, roles: list[str], access_token: str,
                         expires_at: datetime, id_token: str | None = None, refresh_token: str | None = None,
                         staff_id: str | None = None) -> Response:
    """The session, and the person's name kept by their staff id (the services record that id: pages show the
    name instead)."""
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await store(request).delete(previous)  # a new sign-in never reuses an old session id
    session = await store(request).create(subject=subject, display_name=name, roles=roles, access_token=access_token,
                                          token_expires_at=expires_at, id_token=id_token,
                                          refresh_token=refresh_token,
                                          lang=request.cookies.get("desk_lang", "ja"))
    await staff_names(request).seen(staff_id or subject, name, roles)
    log.info("signed in: %s as %s", subject, ",".join(roles))
    response = RedirectResponse("/", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, session.id)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    settings = settings_of(request)
    return render(request, "sign_in.html", None, development=settings.development_sign_in_enabled,
                  oidc=settings.oidc_configured, staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES, problem=None)


@router.post("/sign-in/development", response_class=HTMLResponse)
async def development_sign_in(request: Request, form: Form) -> Response:
    settings = settings_of(request)
    if not settings.development_sign_in_enabled:
        return render(request, "sign_in.html", None, status_code=403, development=False,
                      oidc=settings.oidc_configured, staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES,
                      problem={"message": "開発用サインインは使えません / Development sign-in is off"})
    subject = forms.text(str(form.get("staff_id", "")))
    roles = [role for role in form.getlist("roles") if role in STAFF_ROLES]
    if not subject or not roles or not all(c.isalnum() or c in "._@-" for c in subject) or len(subject) > 100:
        return render(request, "sign_in.html", None, status_code=422, development=True,
                      oidc=settings.oidc_configured, staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES,
                      problem={"message": "職員IDと役割を選んでください / Pick a staff id and at least one role"})
    name = dict(DEVELOPMENT_STAFF).get(subject, subject)
    # As the identity provider's token would: the member's name and departments (a development physician works
    # in every department, so any case can be screened and reported on).
    token = mint_development_token(subject, roles, lifetime_seconds=DEVELOPMENT_TOKEN_SECONDS, name=name,
                                   departments=list(DEFAULT_DEPARTMENTS))
    expires = datetime.now(UTC) + timedelta(seconds=DEVELOPMENT_TOKEN_SECONDS)
    return await _start_session(request, subject=subject, name=name, roles=[str(r) for r in roles],
                                access_token=token, expires_at=expires)


class OpenIdProvider:
    """The hospital's identity provider, as its discovery document describes it."""

    def __init__(self, settings: DeskSettings) -> None:
        assert settings.oidc_issuer
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKClient | None = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                self._metadata = response.json()
        return self._metadata

    def client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id, client_secret=self.settings.oidc_client_secret,
            scope=self.settings.oidc_scope, redirect_uri=f"{self.settings.public_url.rstrip('/')}/sign-in/callback",
            code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")

    def extra(self) -> dict[str, str]:
        return {"resource": self.settings.oidc_resource} if self.settings.oidc_resource else {}

    async def renew(self, refresh_token: str) -> Tokens:
        """The refresh grant: a new access token (and, where the provider rotates them, a new refresh token)."""
        metadata = await self.metadata()
        async with self.client() as client:
            token = await client.refresh_token(metadata["token_endpoint"], refresh_token=refresh_token,
                                               **self.extra())
        return _tokens(token)

    async def id_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        if self._keys is None:
            self._keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=True, timeout=10)
        key = await _in_thread(self._keys.get_signing_key_from_jwt, id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token, key.key, algorithms=["RS256", "PS256", "ES256"], audience=self.settings.oidc_client_id,
            issuer=metadata["issuer"], leeway=30, options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise jwt.InvalidTokenError("the ID token's nonce is not this sign-in's")
        return claims


def _tokens(token: Mapping[str, Any]) -> Tokens:
    """The token endpoint's answer as the session keeps it (Authlib computes `expires_at` from `expires_in`)."""
    expires_at = datetime.fromtimestamp(float(token.get("expires_at") or time.time() + 300), UTC)
    return Tokens(str(token["access_token"]), expires_at, token.get("id_token"), token.get("refresh_token"))


async def _in_thread(function: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(function, *args)


def provider_of(request: Request) -> OpenIdProvider:
    provider: OpenIdProvider = request.app.state.oidc
    return provider


@router.get("/sign-in/oidc")
async def oidc_start(request: Request) -> Response:
    if not settings_of(request).oidc_configured:
        return RedirectResponse("/sign-in", status_code=303)
    provider = provider_of(request)
    metadata = await provider.metadata()
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(24)
    async with provider.client() as client:
        url, state = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                     nonce=nonce, **provider.extra())
    await store(request).begin_sign_in(state, nonce, verifier)
    return RedirectResponse(url, status_code=303)


@router.get("/sign-in/callback")
async def oidc_callback(request: Request, state: str = "", code: str = "") -> Response:
    settings = settings_of(request)
    pending = await store(request).finish_sign_in(state) if state and code else None
    if pending is None or not settings.oidc_configured:
        return render(request, "sign_in.html", None, status_code=400, development=settings.development_sign_in_enabled,
                      oidc=settings.oidc_configured, staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES,
                      problem={"message": "サインインをやり直してください / Please sign in again"})
    nonce, verifier = pending
    provider = provider_of(request)
    metadata = await provider.metadata()
    try:
        async with provider.client() as client:
            token = await client.fetch_token(metadata["token_endpoint"], code=code, code_verifier=verifier,
                                             **provider.extra())
        claims = await provider.id_claims(token["id_token"], nonce)
    except Exception as error:  # the provider said no, or its answer did not verify: never a 500
        log.warning("OIDC sign-in failed: %s", error.__class__.__name__)
        return render(request, "sign_in.html", None, status_code=401, development=False, oidc=True,
                      staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES,
                      problem={"message": "サインインできませんでした / The sign-in failed"})
    held = claims.get(settings.oidc_role_claim, [])
    held = [held] if isinstance(held, str) else held
    roles = [role for role in held if role in STAFF_ROLES] if isinstance(held, list) else []
    if not roles:
        return render(request, "sign_in.html", None, status_code=403, development=False, oidc=True,
                      staff=DEVELOPMENT_STAFF, roles=STAFF_ROLES,
                      problem={"message": "この窓口の役割が割り当てられていません / No desk role is assigned to you"})
    tokens = _tokens(token)
    # The staff id the services record: the provider's `staff_id` claim where it gives one (else the subject).
    staff_id = claims.get("staff_id")
    return await _start_session(request, subject=str(claims["sub"]),
                                name=str(claims.get(settings.oidc_name_claim) or claims["sub"]), roles=roles,
                                access_token=tokens.access_token, expires_at=tokens.expires_at,
                                id_token=tokens.id_token, refresh_token=tokens.refresh_token,
                                staff_id=staff_id if isinstance(staff_id, str) and staff_id.strip() else None)


@router.post("/sign-out")
async def sign_out(request: Request, _: Form) -> Response:
    session = await current_session(request)
    if session is not None:
        await store(request).delete(session.id)
        log.info("signed out: %s", session.subject)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.post("/language")
async def switch_language(request: Request, form: Form) -> Response:
    lang = "en" if form.get("lang") == "en" else "ja"
    session = await current_session(request)
    if session is not None:
        await store(request).set_lang(session, lang)
    back = str(form.get("back", "/"))
    response = RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/", status_code=303)
    set_cookie(request, response, "desk_lang", lang, max_age=365 * 24 * 3600)
    return response
