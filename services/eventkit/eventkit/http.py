"""What every service's HTTP API shares beyond authentication (eventkit.auth): the context a request's command runs
in, the dependencies that reach what the service's bootstrap built, and limits on what a request may carry.

    Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
    Queries = Annotated[CaseQueries, Depends(on_pool(CaseQueries))]

    recorded = await handle(command, command_context(actor, case_id, "ScreenCase"))
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg
from fastapi import Request

from eventkit.clock import tokyo_date
from eventkit.events import Actor, CommandContext

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024


def command_context(actor: Actor, correlation_id: object, command: str) -> CommandContext:
    """The context of a command a staff member sent over HTTP: its events are correlated with the case (or other
    subject) and caused by this one request."""
    return CommandContext(actor=actor, correlation_id=str(correlation_id), causation_id=f"command:{uuid4()}",
                          command=command)


# The dependencies are async, though nothing is awaited: FastAPI runs a plain `def` dependency in a worker thread on
# every request.

def from_app_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency: what the bootstrap put on `app.state.<name>` (the dispatcher, the clock, ...)."""

    async def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        assert isinstance(value, kind), f"app.state.{name} is {type(value).__name__}, not {kind.__name__}"
        return value

    return dependency


async def now(request: Request) -> datetime:
    """A FastAPI dependency: the present instant in UTC by the service's clock (`app.state.clock`, set by
    create_app)."""
    instant: datetime = request.app.state.clock()
    return instant.astimezone(UTC)


async def today(request: Request) -> date:
    """A FastAPI dependency: today's date in Tokyo by the service's clock."""
    return tokyo_date(await now(request))


def on_pool(make: Callable[[asyncpg.Pool], T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency: `make` (a service's queries, say) on the running service's database pool."""

    async def dependency(request: Request) -> T:
        return make(request.app.state.runtime.pool)

    return dependency


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        refused = False
        started = False

        async def counted() -> Any:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    # The app sees the client gone, and whatever it answers is dropped.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        await self.app(scope, counted, guarded_send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes", "code": "too_large"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
