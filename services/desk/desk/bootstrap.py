"""The one place that wires the desk: its session store on its own database, the four services' HTTP APIs, the
identity provider, the routes, and the hardening every answer gets. `build(settings, *, clock, transports)`; tests
give it a settable clock and the services' apps in process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from desk import api, auditor, cases, cashier, coordinator, physician, privacy, signin
from desk.backends import Backends
from desk.departments import DepartmentCatalogue
from desk.sessions import SessionStore
from desk.settings import DeskSettings, production_problems
from desk.staff_names import StaffNames, directory_names
from desk.web import LIVE_SUFFIX, CsrfRejected, Forbidden, SignInRequired, current_session, render
from eventkit import db, db_roles
from eventkit.clock import Clock, utc_now
from eventkit.http import BodySizeLimit
from eventkit.runtime import UnsafeConfiguration

log = logging.getLogger(__name__)
PACKAGE = Path(__file__).resolve().parent
MIGRATIONS = PACKAGE / "migrations"
PURGE_EVERY_SECONDS = 300

# No inline script or style anywhere: every script and stylesheet is a file the desk serves itself.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                           "base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def build(settings: DeskSettings | None = None, *, clock: Clock | None = None,
          transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    settings = settings or DeskSettings()
    problems = production_problems(settings)
    if problems:
        raise UnsafeConfiguration("desk refuses to start in production: " + "; ".join(problems))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db_roles.at_start(settings, [MIGRATIONS])
        pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max)
        oidc: signin.OpenIdProvider | None = getattr(app.state, "oidc", None)
        app.state.sessions = SessionStore(pool, timedelta(minutes=settings.idle_timeout_minutes),
                                          settings.session_key_bytes, renew=oidc.renew if oidc else None,
                                          renew_before=timedelta(seconds=settings.token_renew_before_seconds))
        app.state.staff_names = StaffNames(pool, directory_names(settings.staff_directory_file))
        app.state.backends = Backends(settings.service_urls, settings.service_timeout_seconds, transports)
        app.state.departments = DepartmentCatalogue(app.state.backends, settings.departments_cache_seconds)
        purge = asyncio.create_task(_purge_idle_sessions(app.state.sessions))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await app.state.backends.close()
            await pool.close()

    app = FastAPI(title="Second opinion — desk console", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.clock = clock or utc_now
    if settings.oidc_configured:
        app.state.oidc = signin.OpenIdProvider(settings)
    app.add_middleware(BodySizeLimit)

    @app.middleware("http")
    async def harden(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.public_url.startswith("https://"):
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, _: SignInRequired) -> Response:
        if request.url.path.endswith(LIVE_SUFFIX):
            return JSONResponse({"signed_in": False}, status_code=401)
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _: Forbidden) -> Response:
        session = await current_session(request)
        return render(request, "error.html", session, status_code=403, problem={"message_key": "forbidden_page"})

    @app.exception_handler(CsrfRejected)
    async def csrf_rejected(request: Request, _: CsrfRejected) -> Response:
        log.warning("a state-changing request without a valid CSRF token was refused")
        session = await current_session(request)
        return render(request, "error.html", session, status_code=403,
                      problem={"message": "フォームの有効期限が切れました。ページを開き直してください / "
                                          "The form expired; open the page again"})

    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")
    for router in (api.router, signin.router, coordinator.router, cases.router, physician.router, cashier.router,
                   auditor.router, privacy.router):
        app.include_router(router)
    return app


async def _purge_idle_sessions(sessions: SessionStore) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY_SECONDS)
        try:
            await sessions.purge_idle()
        except Exception as error:  # the database may be restarting; the next round tries again
            log.warning("could not purge idle sessions: %s", error.__class__.__name__)
