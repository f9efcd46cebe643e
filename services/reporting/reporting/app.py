"""The one place that wires reporting's concrete adapters: build() returns the ASGI app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg
from fastapi import FastAPI

from eventkit import db
from eventkit.clock import Clock, tokyo_date, utc_now
from eventkit.documents import HospitalSettings
from eventkit.personal_data import IntakePersonalData
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from reporting import api
from reporting.business_calendar import default_range
from reporting.consumers import EVERY_EVENT, log_and_react
from reporting.handlers import ReportingHandlers
from reporting.settings import ReportingSettings
from reporting.store import EVENT_TYPES, OwnEventsLog, ReportingQueries, rebuild_case_board, sync_business_calendar

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class ReportingRuntime(ServiceRuntime):
    """The shared runtime, plus the business-day calendar filled before the first event is consumed."""

    async def start(self, *, relay: bool = True, consume: bool = True) -> None:
        await db.migrate(self.settings.database_url, self.migrations)
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            await sync_business_calendar(conn, *default_range(tokyo_date(utc_now())))
        finally:
            await conn.close()
        await super().start(relay=relay, consume=consume)

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Reporting's read models come from the log of every service's received events, not its own store."""
        return await rebuild_case_board(self.pool, progress)


def handlers_for(runtime: ServiceRuntime, clock: Clock) -> ReportingHandlers:
    return ReportingHandlers(runtime.store, ReportingQueries(runtime.pool), clock)


def runtime_for(settings: ServiceSettings, *, clock: Clock | None = None) -> ReportingRuntime:
    return ReportingRuntime(
        settings, types=EVENT_TYPES, projections=[OwnEventsLog()], migrations=[MIGRATIONS],
        catch_all=log_and_react(lambda runtime: handlers_for(runtime, clock or utc_now)),
        extra_bindings=EVERY_EVENT,
    )


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None,
          personal_data: IntakePersonalData | None = None, hospital: HospitalSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = runtime_for(settings, clock=clock)
    app = create_app(
        runtime, title="Second opinion — reporting",
        description="The opinion report (draft, finalize, deliver), case timelines across every service, desk KPIs "
                    "and the coordinator dashboard.",
        routers=[api.router],
        on_start=lambda app, runtime: setattr(app.state, "handlers", handlers_for(runtime, clock or utc_now)),
    )
    app.state.dashboard_poll_seconds = getattr(settings, "dashboard_poll_seconds", 2.0)
    # The report letter: names and addresses from intake, the hospital's identity from configuration.
    app.state.personal_data = personal_data or IntakePersonalData(
        getattr(settings, "intake_url", ReportingSettings().intake_url))
    app.state.hospital = hospital or HospitalSettings()
    return app
