"""The one place that builds intake from its settings and adapters: the handlers with their dependencies bound,
and the ASGI app around them. Tests call `bind_handlers` (then give the handlers fake units of work) or `build`
with their own settings and clock."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from eventkit.bootstrap import BoundHandler, bind
from eventkit.clock import Clock, utc_now
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from intake import api
from intake.handlers import HANDLERS
from intake.projections import PROJECTIONS
from intake.repository import EVENT_TYPES, PersonalData, PostgresPersonalData
from intake.settings import IntakeSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def runtime_for(settings: ServiceSettings) -> ServiceRuntime:
    return ServiceRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS])


def bind_handlers(settings: IntakeSettings, clock: Clock,
                  personal_data: PersonalData | None = None) -> dict[type, BoundHandler]:
    """The handlers' table with their dependencies bound: `(command, uow)` each (tests pass fakes of the units of
    work and of the personal data)."""
    return bind(HANDLERS, departments=frozenset(settings.departments), retention_years=settings.retention_years,
                clock=clock, personal_data=personal_data or PostgresPersonalData())


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    assert isinstance(settings, IntakeSettings), f"intake needs IntakeSettings, not {type(settings).__name__}"
    clock = clock or utc_now
    runtime = runtime_for(settings)
    handlers = bind_handlers(settings, clock)
    app = create_app(
        runtime, title="Second opinion — intake",
        description="Requests for a second opinion: requester, documents, consent, eligibility screening.",
        routers=[api.router],
        handlers=handlers, clock=clock,
    )
    return app
