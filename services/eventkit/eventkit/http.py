"""What every service's HTTP API shares beyond authentication (eventkit.auth): the context a request's command runs
in, the dependencies that reach what the service's bootstrap built, limits on what a request may carry, and the
shape of every refusal the edge answers (eventkit.edge, eventkit.input_policy, eventkit.idempotency): one place for
the 422, the 503 and the `{"detail", "code"}` body.

    Handle = Annotated[Dispatcher, Depends(from_app_state("handle", Dispatcher))]
    Queries = Annotated[CaseQueries, Depends(on_pool(CaseQueries))]

    recorded = await handle(command, command_context(actor, case_id, "ScreenCase"))
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eventkit.clock import tokyo_date
from eventkit.events import Actor, CommandContext
from eventkit.messages import JAPANESE, REFUSALS_JA, field_errors, preferred_language

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024

# Set by eventkit.idempotency around a request that carries an Idempotency-Key (the hash of the key and its subject).
# The events of that request's command carry it in their metadata, written in the command's own transaction, so a
# request whose answer was lost after its commit is found by them.
IDEMPOTENCY_METADATA_KEY = "idempotency_key"
request_idempotency_key: ContextVar[str | None] = ContextVar("eventkit_idempotency_key", default=None)


def command_context(actor: Actor, correlation_id: object, command: str) -> CommandContext:
    """The context of a command a staff member sent over HTTP: its events are correlated with the case (or other
    subject), caused by this one request, and tagged with the request's idempotency key if it has one."""
    key = request_idempotency_key.get()
    return CommandContext(actor=actor, correlation_id=str(correlation_id), causation_id=f"command:{uuid4()}",
                          command=command, extra={IDEMPOTENCY_METADATA_KEY: key} if key is not None else {})


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


# --- request bodies, for middleware that reads one before the app --------------------------------------------

async def read_body(receive: Any) -> tuple[bytes, dict[str, Any] | None]:
    """The whole request body, and the message that ended it early (a disconnect) if any."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replay(body: bytes, then: dict[str, Any] | None = None) -> Any:
    """A `receive` that hands the app `body` in one message, then waits as the server's would (or ends with `then`)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return then
        return {"type": "http.disconnect"}

    return receive



class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        japanese = preferred_language(headers.get(b"accept-language", b"").decode("latin-1")) == JAPANESE
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, japanese)
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
                        await self._refuse(send, japanese)
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

    async def _refuse(self, send: Any, japanese: bool) -> None:
        detail = f"{REFUSALS_JA['too_large']}（上限 {self.limit} バイト）" if japanese else \
            f"request body larger than {self.limit} bytes"
        body = json.dumps({"detail": detail, "code": "too_large"}, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# --- refusals ---------------------------------------------------------------------------------------------------

def refusal(status: int, detail: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal as every route answers one (runtime.ErrorBody): a readable reason and a stable code."""
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def unavailable() -> JSONResponse:
    """The 503 of a database outage, wherever it is met: nothing was recorded, so the client may retry."""
    return refusal(503, "the database is unavailable; nothing was recorded, retry shortly", "unavailable",
                   {"Retry-After": "2"})


def unprocessable(problems: Sequence[tuple[str, Sequence[str | int], str]]) -> JSONResponse:
    """The one 422 body, FastAPI's shape without its `input`: for each problem its type, where it is and why. It
    never quotes what was sent (that may be a patient's name)."""
    return JSONResponse({"detail": [{"type": kind, "loc": list(location), "msg": message}
                                    for kind, location, message in problems]}, status_code=422)


async def validation_refused(request: Request, error: Exception) -> JSONResponse:
    """The one exception handler for RequestValidationError: FastAPI's default 422 echoes the input, this one does
    not; each problem's `msg` is in Japanese when the reader asks for it."""
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    readable = field_errors(errors, preferred_language(request.headers.get("accept-language")))
    return unprocessable([(item.get("type", "invalid"), item.get("loc", ()), str(said.get("msg", "")))
                          for item, said in zip(errors, readable, strict=True)])
