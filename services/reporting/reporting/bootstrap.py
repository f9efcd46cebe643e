"""The one place that builds reporting from its settings and adapters: the handlers with their dependencies bound
(one table for the desk's commands and those other services' events become), the log every received event goes
into first, and the ASGI app around them. Tests call `bind_handlers` or `build` with their own settings and clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from eventkit import db_roles
from eventkit.bootstrap import BoundHandler, bind
from eventkit.clock import Clock, tokyo_date, utc_now
from eventkit.consumer import Delivery, reactions_by_command
from eventkit.documents import HospitalSettings
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.service_identity import IntakeDisclosure, intake_disclosure
from eventkit.settings import ServiceSettings
from eventkit.unit_of_work import UnitOfWork
from reporting import api
from reporting.business_calendar import default_range
from reporting.consumers import COMMANDS, EVERY_EVENT
from reporting.handlers import HANDLERS
from reporting.projections import OwnEventsLog, ReceivedEventsLog, rebuild_case_board, sync_business_calendar
from reporting.repository import EVENT_TYPES, CaseFiles, PostgresCaseFiles
from reporting.settings import ReportingSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class ReportingRuntime(ServiceRuntime):
    """The shared runtime, plus the business-day calendar filled before the first event is consumed."""

    async def start(self, *, relay: bool = True, consume: bool = True) -> None:
        await db_roles.at_start(self.settings, self.migrations)
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            await sync_business_calendar(conn, *default_range(tokyo_date(utc_now())))
        finally:
            await conn.close()
        await super().start(relay=relay, consume=consume)

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Reporting's read models come from the log of every service's received events, not its own store."""
        return await rebuild_case_board(self.pool, progress)


def bind_handlers(clock: Clock, files: CaseFiles | None = None) -> dict[type, BoundHandler]:
    """The handlers' table with their dependencies bound: `(command, uow)` each (tests pass fake case files)."""
    return bind(HANDLERS, clock=clock, files=files or PostgresCaseFiles())


async def only_logged(delivery: Delivery, uow: UnitOfWork) -> None:
    """Every event without a command is only logged (projections.ReceivedEventsLog, before any reaction)."""


def runtime_for(settings: ServiceSettings, handlers: Mapping[type, BoundHandler] | None = None) -> ReportingRuntime:
    """The running parts; with `handlers`, consuming every event (logged, and turned into its command where
    consumers.COMMANDS has one); without: for `migrate` and `rebuild`."""
    assert isinstance(settings, ReportingSettings), f"reporting needs ReportingSettings, not {type(settings).__name__}"
    consuming: dict[str, Any] = {}
    if handlers is not None:
        reactions = reactions_by_command(COMMANDS, handlers)
        consuming = {"consumed_projections": [ReceivedEventsLog()], "reactions": lambda _: reactions,
                     "catch_all_reaction": lambda _: only_logged, "extra_bindings": EVERY_EVENT}
    return ReportingRuntime(settings, types=EVENT_TYPES, projections=[OwnEventsLog()], migrations=[MIGRATIONS],
                            **consuming)


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None,
          personal_data: IntakeDisclosure | None = None, hospital: HospitalSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    assert isinstance(settings, ReportingSettings), f"reporting needs ReportingSettings, not {type(settings).__name__}"
    clock = clock or utc_now
    handlers = bind_handlers(clock)
    app = create_app(
        runtime_for(settings, handlers), title="Second opinion — reporting",
        description="The opinion report (draft, finalize, deliver), case timelines across every service, the case "
                    "board and desk KPIs.",
        routers=[api.router],
        handlers=handlers, clock=clock,
    )
    app.state.console_url = settings.console_url
    # The report letter: names and addresses from intake, the hospital's identity from configuration.
    app.state.personal_data = personal_data or intake_disclosure("reporting", settings.intake_url)
    app.state.hospital = hospital or HospitalSettings()
    return app
