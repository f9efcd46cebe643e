"""The one place that wires intake's concrete adapters: build() returns the ASGI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from eventkit.clock import Clock, utc_now
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from intake import api
from intake.handlers import IntakeHandlers
from intake.settings import IntakeSettings
from intake.store import EVENT_TYPES, CaseViewProjection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def runtime_for(settings: ServiceSettings) -> ServiceRuntime:
    return ServiceRuntime(settings, types=EVENT_TYPES, projections=[CaseViewProjection()], migrations=[MIGRATIONS])


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = runtime_for(settings)
    departments = frozenset(getattr(settings, "departments", ()))
    app = create_app(
        runtime, title="Second opinion — intake",
        description="Requests for a second opinion: requester, documents, consent, eligibility screening.",
        routers=[api.router],
        on_start=lambda app, runtime: setattr(
            app.state, "handlers",
            IntakeHandlers(runtime.store, departments, clock or utc_now, getattr(settings, "retention_years", 5))),
    )
    return app
