"""The one place that builds intake from its settings and adapters: the handlers with their dependencies bound,
and the ASGI app around them. Tests call `bind_handlers` with fakes, or `build` with their own settings and clock."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from eventkit.clock import Clock, utc_now
from eventkit.events import CommandContext, RecordedEvent
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from eventkit.store import EventStore
from intake import api
from intake.handlers import HANDLERS
from intake.projections import PROJECTIONS
from intake.repository import EVENT_TYPES
from intake.settings import IntakeSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

BoundHandler = Callable[[Any, CommandContext], Awaitable[list[RecordedEvent]]]


def runtime_for(settings: ServiceSettings) -> ServiceRuntime:
    return ServiceRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS])


def bind_handlers(settings: IntakeSettings, store: EventStore, clock: Clock) -> Mapping[type, BoundHandler]:
    dependencies = {"store": store, "departments": frozenset(settings.departments),
                    "retention_years": settings.retention_years, "clock": clock}
    return {command: _inject(handler, dependencies) for command, handler in HANDLERS.items()}


def _inject(handler: Callable[..., Any], dependencies: Mapping[str, Any]) -> BoundHandler:
    wanted = inspect.signature(handler).parameters
    return partial(handler, **{name: value for name, value in dependencies.items() if name in wanted})


def build(settings: ServiceSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    assert isinstance(settings, IntakeSettings), f"intake needs IntakeSettings, not {type(settings).__name__}"
    clock = clock or utc_now
    runtime = runtime_for(settings)
    app = create_app(
        runtime, title="Second opinion — intake",
        description="Requests for a second opinion: requester, documents, consent, eligibility screening.",
        routers=[api.router],
        on_start=lambda app, runtime: setattr(app.state, "handlers", bind_handlers(settings, runtime.store, clock)),
    )
    app.state.clock = clock
    return app
