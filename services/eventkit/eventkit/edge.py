"""What every service's HTTP edge does before and after a route: security headers on every response, the API docs
served from the service itself (or not at all), and rate limits on failed sign-ins and on writes.

Rate limits are counted in this process (one replica: a deployment with several multiplies them by the replica
count; docs/security.md says so). `install` wires all of the edge, in order, into a service's app.
"""

from __future__ import annotations

import math
import time
from importlib.resources import files
from typing import Any

import jwt
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.http import BodySizeLimit
from eventkit.idempotency import Idempotency
from eventkit.input_policy import InputPolicy

OFF = "off"


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # /docs, /redoc and /openapi.json; a production deployment that publishes its API elsewhere sets API_DOCS=false.
    api_docs: bool = Field(True, validation_alias="API_DOCS")
    # Requests with a bearer token answered 401, per client address, before that client gets 429 ("off": none).
    rate_limit_failed_signins: str = Field("30/minute", validation_alias="RATE_LIMIT_FAILED_SIGNINS")
    # Writes (POST, PUT, PATCH, DELETE) per signed-in subject ("off": none). A person at the desk makes a few a minute.
    rate_limit_writes: str = Field("300/minute", validation_alias="RATE_LIMIT_WRITES")
    hsts_max_age_seconds: int = Field(31_536_000, validation_alias="HSTS_MAX_AGE_SECONDS", ge=0)
    # How long an Idempotency-Key's answer is kept (the IETF draft asks for at least a day).
    idempotency_keep_hours: int = Field(24, validation_alias="IDEMPOTENCY_KEEP_HOURS", ge=24, le=24 * 90)

    @field_validator("rate_limit_failed_signins", "rate_limit_writes")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        if value.strip().lower() != OFF:
            parse(value)  # ValueError names what is wrong
        return value


def install(app: FastAPI, settings: EdgeSettings) -> None:
    """The edge around `app`, outermost first: headers, rate limits, body size, input policy, idempotency."""
    app.add_middleware(Idempotency, keep_hours=settings.idempotency_keep_hours)
    app.add_middleware(InputPolicy)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RateLimits, failed_signins=settings.rate_limit_failed_signins,
                       writes=settings.rate_limit_writes)
    app.add_middleware(SecurityHeaders, hsts_max_age_seconds=settings.hsts_max_age_seconds)
    if settings.api_docs:
        add_docs(app)


def fastapi_docs_options(settings: EdgeSettings) -> dict[str, Any]:
    """FastAPI's own docs pages off (they load Swagger UI and ReDoc from a CDN); `add_docs` serves ours."""
    return {"docs_url": None, "redoc_url": None, "openapi_url": "/openapi.json" if settings.api_docs else None}


# --- headers --------------------------------------------------------------------------------------------

# An API answer is data, never a page: nothing may load from it, frame it or run in it.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# A page (the docs) loads only from this service. ReDoc and Swagger UI set styles at run time, and
# ReDoc runs a worker from a blob.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'self'")


class SecurityHeaders:
    """ASGI middleware: the hardening headers on every response (a route's own CSP or Cache-Control is kept)."""

    def __init__(self, app: Any, hsts_max_age_seconds: int = 31_536_000) -> None:
        self.app = app
        self.fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if hsts_max_age_seconds:
            self.fixed.append((b"strict-transport-security", f"max-age={hsts_max_age_seconds}; includeSubDomains"
                               .encode()))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
                if b"content-security-policy" not in present:
                    policy = PAGE_POLICY if content_type.startswith(b"text/html") else API_POLICY
                    headers.append((b"content-security-policy", policy.encode()))
                if b"cache-control" not in present:
                    # Answers carry personal data: no shared cache or browser history keeps them.
                    headers.append((b"cache-control", b"no-store"))
                headers += [(name, value) for name, value in self.fixed if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# --- rate limits -----------------------------------------------------------------------------------------

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _limit(rate: str) -> RateLimitItem | None:
    return None if rate.strip().lower() == OFF else parse(rate)


class RateLimits:
    """ASGI middleware: a client whose bearer tokens were refused (401) too often, and a subject who wrote too
    often, get 429 with Retry-After until the moving window lets them through. A write counts once its token was
    accepted (the route's `allow` put the actor on the request); a refused token counts for its client address."""

    def __init__(self, app: Any, failed_signins: str = "30/minute", writes: str = "300/minute") -> None:
        self.app = app
        self.failed_signins = _limit(failed_signins)
        self.writes = _limit(writes)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        token = _bearer_token(headers.get(b"authorization"))
        client = (scope.get("client") or ("unknown",))[0]
        writing = scope["method"] in WRITE_METHODS
        subject = _unverified_subject(token) if writing and token else None
        if token is not None and self.failed_signins and not self.limiter.test(self.failed_signins, "signin", client):
            await self._refuse(scope, receive, send, self.failed_signins, ("signin", client),
                               "too many refused sign-ins from this client")
            return
        if subject is not None and self.writes and not self.limiter.test(self.writes, "writes", subject):
            await self._refuse(scope, receive, send, self.writes, ("writes", subject), "too many writes by this user")
            return
        state = scope.setdefault("state", {})
        status = 500

        async def watched(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        if token is not None and status == 401 and self.failed_signins:
            self.limiter.hit(self.failed_signins, "signin", client)
        actor = state.get("actor")
        if writing and actor is not None and self.writes:
            self.limiter.hit(self.writes, "writes", actor.id)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any, limit: RateLimitItem,
                      key: tuple[str, str], why: str) -> None:
        stats = self.limiter.get_window_stats(limit, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        response = JSONResponse({"detail": f"{why} (at most {limit}); retry in {retry_after} s",
                                 "code": "rate_limited"}, status_code=429, headers={"Retry-After": str(retry_after)})
        await response(scope, receive, send)


def _bearer_token(header: bytes | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unverified_subject(token: str) -> str | None:
    """The token's `sub`, unverified: only to look up whether that subject is over its limit (a forger learns
    nothing and spends nothing of anyone's budget; what counts is the subject `allow` verified)."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return subject if isinstance(subject, str) else None


# --- docs ------------------------------------------------------------------------------------------------

_ASSETS = files("fastapi_offline").joinpath("static")
_ASSET_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
_SWAGGER_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], layout: "BaseLayout"});"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<link rel="icon" href="/docs/assets/favicon.png">{body}</html>')


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts served from this service (pinned: the versions the
    `fastapi-offline` package of uv.lock ships; Swagger UI is Apache-2.0, ReDoc MIT), so they work on an intranet
    without internet and load no third-party code."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_page(f"{title} - Swagger UI", '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">'
                                  '</head><body><div id="swagger-ui"></div>'
                                  '<script src="/docs/assets/swagger-ui-bundle.js"></script>'
                                  '<script src="/docs/assets/swagger-init.js"></script></body>'))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_page(f"{title} - ReDoc", '</head><body><redoc spec-url="/openapi.json"></redoc>'
                                  '<script src="/docs/assets/redoc.standalone.js"></script></body>'))

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name == "swagger-init.js":
            return Response(_SWAGGER_INIT, media_type="text/javascript")
        if name not in _ASSET_TYPES:
            return Response(status_code=404)
        return Response(_ASSETS.joinpath(name).read_bytes(), media_type=_ASSET_TYPES[name],
                        headers={"Cache-Control": "public, max-age=86400"})
