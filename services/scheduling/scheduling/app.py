"""The one place that wires scheduling's concrete adapters: build() returns the ASGI app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from eventkit.business_calendar import BusinessCalendar
from eventkit.clock import Clock, utc_now
from eventkit.documents import HospitalSettings
from eventkit.personal_data import IntakePersonalData
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from scheduling import api, consumers
from scheduling.handlers import SchedulingHandlers
from scheduling.settings import SchedulingSettings
from scheduling.store import EVENT_TYPES, PROJECTIONS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _scheduling_settings(settings: ServiceSettings) -> SchedulingSettings:
    if not isinstance(settings, SchedulingSettings):
        raise TypeError(f"scheduling needs SchedulingSettings, not {type(settings).__name__}")
    return settings


def handlers_for(runtime: ServiceRuntime, clock: Clock | None = None) -> SchedulingHandlers:
    settings = _scheduling_settings(runtime.settings)
    return SchedulingHandlers(
        store=runtime.store, calendar=BusinessCalendar(settings.extra_closures), clock=clock or utc_now,
        hold_for=timedelta(minutes=settings.hold_minutes),
        booking_horizon=timedelta(days=settings.booking_horizon_days))


def runtime_for(settings: ServiceSettings, *, clock: Clock | None = None) -> ServiceRuntime:
    return ServiceRuntime(_scheduling_settings(settings), types=EVENT_TYPES, projections=PROJECTIONS,
                          migrations=[MIGRATIONS],
                          handlers=lambda runtime: consumers.subscriptions(handlers_for(runtime, clock)))


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None,
          personal_data: IntakePersonalData | None = None, hospital: HospitalSettings | None = None) -> FastAPI:
    settings = settings or SchedulingSettings()
    runtime = runtime_for(settings, clock=clock)
    app = create_app(
        runtime, title="Second opinion — scheduling",
        description="Business-day calendar, department slots, candidate dates and appointments.",
        routers=[api.router],
        on_start=lambda app, runtime: setattr(app.state, "handlers", handlers_for(runtime, clock)),
    )
    # The appointment slip: the patient's name and address from intake, the hospital's identity from configuration.
    app.state.personal_data = personal_data or IntakePersonalData(_scheduling_settings(settings).intake_url)
    app.state.hospital = hospital or HospitalSettings()
    return app
