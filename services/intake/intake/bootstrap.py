"""The one place that builds intake from its settings and adapters: the handlers with their dependencies bound,
and the ASGI app around them. Tests call `bind_handlers` (then give the handlers fake units of work) or `build`
with their own settings and clock."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from eventkit import db
from eventkit.bootstrap import BoundHandler, bind
from eventkit.clock import Clock, utc_now
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from intake import api
from intake.handlers import HANDLERS
from intake.projections import PROJECTIONS
from intake.repository import (
    EVENT_TYPES,
    CaseNumbers,
    ErasureRequests,
    PersonalData,
    PostgresCaseNumbers,
    PostgresErasureRequests,
    PostgresPersonalData,
)
from intake.search import BlindIndex
from intake.settings import IntakeSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def runtime_for(settings: ServiceSettings) -> ServiceRuntime:
    return ServiceRuntime(settings, types=EVENT_TYPES, projections=PROJECTIONS, migrations=[MIGRATIONS])


def blind_index(settings: IntakeSettings) -> BlindIndex:
    """The index cases are searched by, keyed with INTAKE_SEARCH_INDEX_KEY (the handlers write it, the search reads
    it: one key for both)."""
    return BlindIndex(settings.search_index_key.get_secret_value().encode())


async def reindex_search(settings: ServiceSettings) -> str:
    """`python -m intake reindex-search`: the blind index rebuilt from the sealed data under the current key (the
    cases submitted before the index, or every case after the key changed)."""
    assert isinstance(settings, IntakeSettings)
    pool = await db.create_pool(settings.database_url, max_size=2)
    try:
        count = await PostgresPersonalData(blind_index(settings)).reindex(pool)
    finally:
        await pool.close()
    return f"search index rebuilt for {count.indexed} case(s); {count.erased} erased case(s) left out"


def bind_handlers(settings: IntakeSettings, clock: Clock, personal_data: PersonalData | None = None,
                  erasure_requests: ErasureRequests | None = None,
                  case_numbers: CaseNumbers | None = None) -> dict[type, BoundHandler]:
    """The handlers' table with their dependencies bound: `(command, uow)` each (tests pass fakes of the units of
    work, of the personal data, of the erasure requests and of the case numbers)."""
    return bind(HANDLERS, departments=frozenset(settings.departments), retention_years=settings.retention_years,
                clock=clock, personal_data=personal_data or PostgresPersonalData(blind_index(settings)),
                erasure_requests=erasure_requests or PostgresErasureRequests(),
                case_numbers=case_numbers or PostgresCaseNumbers())


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
    app.state.departments = tuple(settings.departments)
    app.state.blind_index = blind_index(settings)
    app.state.retention_years = settings.retention_years
    return app
