"""The one place that builds scheduling from its settings and adapters: the handlers with their dependencies bound
(the same table for the desk's commands and for the commands other services' events become), and the ASGI app
around them. Tests call `bind_handlers` (then give the handlers fake units of work) or `build`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from eventkit.bootstrap import BoundHandler, bind
from eventkit.business_calendar import BusinessCalendar
from eventkit.clock import Clock, utc_now
from eventkit.consumer import reactions_by_command
from eventkit.documents import HospitalSettings
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.service_identity import IntakeDisclosure, intake_disclosure
from eventkit.settings import ServiceSettings
from scheduling import api
from scheduling.consumers import COMMANDS
from scheduling.handlers import HANDLERS
from scheduling.projections import PROJECTIONS
from scheduling.repository import EVENT_TYPES, PhysicianSchedules, PostgresPhysicianSchedules
from scheduling.settings import SchedulingSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _scheduling_settings(settings: ServiceSettings) -> SchedulingSettings:
    if not isinstance(settings, SchedulingSettings):
        raise TypeError(f"scheduling needs SchedulingSettings, not {type(settings).__name__}")
    return settings


def bind_handlers(settings: SchedulingSettings, clock: Clock,
                  schedules: PhysicianSchedules | None = None) -> dict[type, BoundHandler]:
    """The handlers' table with their dependencies bound: `(command, uow)` each (tests pass fakes of the units of
    work and of the physicians' schedules)."""
    return bind(HANDLERS, calendar=BusinessCalendar(settings.extra_closures), clock=clock,
                hold_for=timedelta(minutes=settings.hold_minutes),
                booking_horizon=timedelta(days=settings.booking_horizon_days),
                schedules=schedules or PostgresPhysicianSchedules())


def runtime_for(settings: ServiceSettings, handlers: Mapping[type, BoundHandler] | None = None) -> ServiceRuntime:
    """The running parts; with `handlers`, consuming the events consumers.COMMANDS turns into their commands (without:
    for `migrate` and `rebuild`)."""
    reactions = (lambda _: reactions_by_command(COMMANDS, handlers)) if handlers is not None else None
    return ServiceRuntime(_scheduling_settings(settings), types=EVENT_TYPES, projections=PROJECTIONS,
                          migrations=[MIGRATIONS], reactions=reactions)


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None,
          personal_data: IntakeDisclosure | None = None, hospital: HospitalSettings | None = None) -> FastAPI:
    settings = _scheduling_settings(settings or SchedulingSettings())
    clock = clock or utc_now
    handlers = bind_handlers(settings, clock)
    app = create_app(
        runtime_for(settings, handlers), title="Second opinion — scheduling",
        description="Business-day calendar, department slots, candidate dates and appointments.",
        routers=[api.router],
        handlers=handlers, clock=clock,
    )
    app.state.calendar = BusinessCalendar(settings.extra_closures)
    # The appointment slip: the patient's name and address from intake, the hospital's identity from configuration.
    app.state.personal_data = personal_data or intake_disclosure("scheduling", settings.intake_url)
    app.state.hospital = hospital or HospitalSettings()
    return app
