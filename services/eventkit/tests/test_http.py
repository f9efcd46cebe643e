"""The HTTP plumbing every service's API shares: a command's context, and dependencies on what the bootstrap built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI

from eventkit.bootstrap import Dispatcher
from eventkit.clock import TOKYO
from eventkit.events import Actor
from eventkit.http import command_context, from_app_state, now, on_pool, today
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from eventkit.store import EventTypes
from eventkit.testing import running_app
from eventkit.unit_of_work import UnitOfWork


class Counter:
    def __init__(self, start: int) -> None:
        self.start = start


def test_a_commands_context_is_correlated_with_its_subject_and_caused_by_its_own_request() -> None:
    actor = Actor(id="nurse-7", role="coordinator")
    first, second = (command_context(actor, 42, "ScreenCase") for _ in range(2))
    assert (first.actor, first.correlation_id, first.command) == (actor, "42", "ScreenCase")
    assert first.causation_id is not None
    assert first.causation_id.startswith("command:")
    assert first.causation_id != second.causation_id


async def test_dependencies_reach_the_app_state_and_the_runtimes_pool() -> None:
    app = FastAPI()
    app.state.counter = Counter(7)
    app.state.runtime = SimpleNamespace(pool="the pool")

    @app.get("/")
    async def read(counter: Annotated[Counter, Depends(from_app_state("counter", Counter))],
                   on: Annotated[str, Depends(on_pool(lambda pool: f"queries on {pool}"))]) -> dict[str, object]:
        return {"start": counter.start, "queries": on}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/")).json() == {"start": 7, "queries": "queries on the pool"}


async def test_the_apps_clock_gives_now_and_todays_date_in_tokyo() -> None:
    app = FastAPI()
    app.state.clock = lambda: datetime(2026, 12, 2, 0, 30, tzinfo=TOKYO)  # 15:30 UTC on the 1st

    @app.get("/")
    async def read(at: Annotated[datetime, Depends(now)], on: Annotated[date, Depends(today)]) -> dict[str, str]:
        return {"now": at.isoformat(), "today": on.isoformat()}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/")).json() == {"now": "2026-12-01T15:30:00+00:00", "today": "2026-12-02"}


@dataclass(frozen=True)
class Echo:
    text: str


async def echo(command: Echo, uow: UnitOfWork) -> str:
    return f"{command.text} as {uow.context.actor.id}"


async def test_a_service_app_dispatches_commands_to_its_handlers_table(database: str, rabbitmq_url: str) -> None:
    settings = ServiceSettings(service="testsvc", database_url=database, RABBITMQ_URL=rabbitmq_url)
    runtime = ServiceRuntime(settings, types=EventTypes.of())
    router = APIRouter()

    @router.post("/echo")
    async def post(handle: Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))],
                   at: Annotated[datetime, Depends(now)]) -> dict[str, str]:
        actor = Actor(id="nurse-7", role="coordinator")
        return {"said": await handle(Echo("hello"), command_context(actor, "case-1", "Echo")), "at": at.isoformat()}

    app = create_app(runtime, title="test", description="test", routers=[router], handlers={Echo: echo},
                     clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    async with running_app(app) as client:
        assert (await client.post("/echo")).json() == {"said": "hello as nurse-7", "at": "2026-12-01T00:00:00+00:00"}
