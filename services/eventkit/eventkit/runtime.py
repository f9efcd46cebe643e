"""One service's running parts (database pool, event store, outbox relay, broker, consumer) and the
HTTP app around them with health, readiness, metrics and error mapping. Services build theirs in
app.py; nothing here knows a service."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream.rabbit import RabbitBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from eventkit import audit, db, metrics
from eventkit.auth import AuthSettings, TokenVerifier
from eventkit.batching import BatchingConsumer, BatchingEventStore
from eventkit.bootstrap import BoundHandler, Dispatcher
from eventkit.clock import Clock
from eventkit.consumer import ConsumedProjection, Consumer, Handler, Reaction, joined_to_delivery
from eventkit.errors import CommandRejected
from eventkit.http import BodySizeLimit
from eventkit.outbox import OutboxRelay, outbox_status
from eventkit.settings import ServiceSettings, production_problems
from eventkit.store import ConcurrencyError, EventStore, EventTypes, Projection
from eventkit.telemetry import configure_tracing, instrument_http
from eventkit.topology import dead_letter_queue, declare_inbox
from eventkit.unit_of_work import UnitOfWorkFactory, postgres_units_of_work
from secondopinion_contracts import EventData

log = logging.getLogger(__name__)

class UnsafeConfiguration(RuntimeError):
    pass


HandlersFactory = Callable[["ServiceRuntime"], Mapping[type[EventData], Handler]]
ReactionsFactory = Callable[["ServiceRuntime"], Mapping[type[EventData], Reaction]]


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, *, types: EventTypes, projections: Sequence[Projection] = (),
                 migrations: Sequence[Path] = (), handlers: HandlersFactory | None = None,
                 catch_all: Callable[[ServiceRuntime], Handler] | None = None,
                 extra_bindings: tuple[str, ...] = (), reactions: ReactionsFactory | None = None,
                 catch_all_reaction: Callable[[ServiceRuntime], Reaction] | None = None,
                 consumed_projections: Sequence[ConsumedProjection] = ()) -> None:
        """`reactions` (event type -> handler of the delivery and a unit of work joined to its transaction) and
        `catch_all_reaction` are what `handlers` and `catch_all` (handlers of a connection and the delivery) were;
        a service gives one pair or the other. `consumed_projections` are kept from the events consumed, before the
        handlers run (eventkit.consumer.ConsumedProjection)."""
        self.settings = settings
        self.service = settings.service
        self.types = types
        self.projections = projections
        self.migrations = migrations
        self._handlers = handlers
        self._catch_all = catch_all
        self._reactions = reactions
        self._catch_all_reaction = catch_all_reaction
        self.consumed_projections = consumed_projections
        self.extra_bindings = extra_bindings
        self._pool: asyncpg.Pool | None = None
        self._store: EventStore | None = None
        self.relay: OutboxRelay | None = None
        self.broker: RabbitBroker | None = None
        self.consumer: Consumer | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def store(self) -> EventStore:
        assert self._store is not None, "runtime not started"
        return self._store

    @property
    def units_of_work(self) -> UnitOfWorkFactory:
        """Fresh units of work on the event store, each in a transaction of its own: what command handlers get."""
        return postgres_units_of_work(self.store)

    async def start(self, *, relay: bool = True, consume: bool = True) -> None:
        settings = self.settings
        await db.migrate(settings.database_url, self.migrations)
        self._pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_max)
        if relay:
            self.relay = OutboxRelay(settings.database_url, settings.rabbitmq_url, service=self.service,
                                     batch_size=settings.outbox_batch_size,
                                     sweep_interval=settings.outbox_sweep_seconds)
            self.relay.start()
        # The batching store and consumer: the same behaviour as the plain ones, in fewer round trips.
        store = self._store = BatchingEventStore(self._pool, service=self.service, types=self.types,
                                                 projections=self.projections, relay=self.relay,
                                                 append_batch_max=settings.append_batch_max)
        handlers = dict(self._handlers(self)) if self._handlers else {}
        handlers.update({event_type: joined_to_delivery(store, reaction)
                         for event_type, reaction in (self._reactions(self) if self._reactions else {}).items()})
        catch_all = self._catch_all(self) if self._catch_all else None
        if self._catch_all_reaction is not None:
            catch_all = joined_to_delivery(store, self._catch_all_reaction(self))
        if consume and (handlers or catch_all):
            self.broker = RabbitBroker(settings.rabbitmq_url, logger=None, graceful_timeout=10.0, apply_types=False)
            self.consumer = BatchingConsumer(
                self.service, self._pool, handlers, catch_all=catch_all, extra_bindings=self.extra_bindings,
                prefetch=settings.consumer_prefetch, max_attempts=settings.consumer_max_attempts,
                projections=self.consumed_projections, batch_max=settings.consumer_batch_max,
                batch_scope=store.appends_written_together)
            self.consumer.attach(self.broker)
            await self.broker.connect()
            await self._declare_topology(self.consumer.bindings)
            await self.broker.start()

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop and rebuild the read models; returns how many events were replayed. A service whose read
        models come from somewhere other than its event store overrides this."""
        return await self.store.rebuild_projections(progress)

    async def _declare_topology(self, bindings: Sequence[str]) -> None:
        connection = await aio_pika.connect(self.settings.rabbitmq_url)
        try:
            await declare_inbox(await connection.channel(), self.service, bindings)
        finally:
            await connection.close()

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self._pool is not None:
            await self._pool.close()

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        try:
            async with self.pool.acquire(timeout=2) as conn:
                checks["database"] = await conn.fetchval("SELECT true") is True
                backlog, age = await outbox_status(conn)
                metrics.OUTBOX_BACKLOG.labels(self.service).set(backlog)
                metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
        except Exception:
            checks["database"] = False
        if self.relay is not None:
            checks["outbox_relay"] = self.relay.running
        if self.consumer is not None:
            inbox_consumers = await self._broker_view()
            checks["broker"] = inbox_consumers is not None
            # Attached means this process's consumer holds an open channel AND the broker counts a consumer
            # on the inbox: after a broker restart a connection can come back without its consumer.
            checks["consumer_attached"] = self.consumer.is_attached() and bool(inbox_consumers)
        return checks

    async def _broker_view(self) -> int | None:
        """The inbox's consumer count as the broker sees it (and the DLQ depth into metrics), or None."""
        assert self.consumer is not None
        try:
            connection = await aio_pika.connect(self.settings.rabbitmq_url, timeout=2)
        except Exception:
            return None
        try:
            channel = await connection.channel()
            inbox = await channel.declare_queue(self.consumer.queue, passive=True)
            dead = await channel.declare_queue(dead_letter_queue(self.service), passive=True)
            metrics.DLQ_DEPTH.labels(self.service).set(dead.declaration_result.message_count or 0)
            metrics.PROJECTION_LAG.labels(self.service).set(inbox.declaration_result.message_count or 0)
            return inbox.declaration_result.consumer_count or 0
        except Exception as error:
            log.warning("could not inspect the inbox queues: %s", error.__class__.__name__)
            return None
        finally:
            await connection.close()


def create_app(runtime: ServiceRuntime, *, title: str, description: str, routers: Sequence[Any],
               on_start: Callable[[FastAPI, ServiceRuntime], None] | None = None, version: str = "1.0.0",
               handlers: Mapping[type, BoundHandler] | None = None, clock: Clock | None = None) -> FastAPI:
    """The service's ASGI app. Once the runtime has started, `app.state.handle` runs a command's handler from
    `handlers` (a `Dispatcher` on the runtime's units of work) and `on_start` wires anything else; `app.state.clock`
    is `clock` (what `eventkit.http.now` and `today` read)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if handlers is not None:
            app.state.handle = Dispatcher(handlers, runtime.units_of_work)
        if on_start is not None:
            on_start(app, runtime)
        try:
            yield
        finally:
            await runtime.stop()

    auth = AuthSettings()
    problems = production_problems(runtime.settings, auth.uses_development_key())
    if problems:
        raise UnsafeConfiguration(f"{runtime.service} refuses to start in production: " + "; ".join(problems))
    configure_tracing(runtime.service)
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    instrument_http(app)
    app.add_middleware(BodySizeLimit)
    app.state.runtime = runtime
    if clock is not None:
        app.state.clock = clock
    app.state.token_verifier = TokenVerifier(auth)
    app.include_router(audit.router)
    service = runtime.service

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Any]) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.HTTP_SECONDS.labels(service, request.method, path, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response

    @app.exception_handler(CommandRejected)
    async def rejected(_: Request, error: CommandRejected) -> JSONResponse:
        return JSONResponse({"detail": error.message, "code": error.code, "reasons": error.details},
                            status_code=error.status_code)

    @app.exception_handler(ConcurrencyError)
    async def conflict(_: Request, error: ConcurrencyError) -> JSONResponse:
        return JSONResponse({"detail": "the case was changed by someone else at the same time; reload and retry",
                             "code": "concurrent_change"}, status_code=409)

    for transient in db.TRANSIENT_DB_ERRORS:
        @app.exception_handler(transient)
        async def unavailable(_: Request, error: Exception) -> JSONResponse:
            log.warning("database unavailable: %s", error.__class__.__name__)
            return JSONResponse({"detail": "the database is unavailable; nothing was recorded, retry shortly",
                                 "code": "unavailable"}, status_code=503, headers={"Retry-After": "2"})

    @app.get("/healthz", tags=["operations"], include_in_schema=True)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": service}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus() -> Response:
        await runtime.readiness()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    return app


class ErrorBody(BaseModel):
    """What every refusal answers: a readable reason, a stable code to branch on, and details if any."""

    detail: str
    code: str | None = None
    reasons: list[str] = []


# Declared on every API route so that clients (and schemathesis) know the shape of a refusal.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or not a valid one"},
    403: {"model": ErrorBody, "description": "The token lacks the role this route is for"},
    404: {"model": ErrorBody, "description": "No such case, appointment, invoice or report"},
    409: {"model": ErrorBody, "description": "Refused in the current state (`code` says why); nothing was recorded"},
    413: {"model": ErrorBody, "description": "The request body is over the size limit"},
    503: {"model": ErrorBody, "description": "The database is unavailable; nothing was recorded, retry after "
                                             "`Retry-After` seconds"},
}


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll until predicate() is truthy (awaiting it if it is a coroutine), or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
