"""The HTTP plumbing every service's API shares: a command's context, and dependencies on what the bootstrap built."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

from eventkit.events import Actor
from eventkit.http import command_context, from_app_state, on_pool


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
