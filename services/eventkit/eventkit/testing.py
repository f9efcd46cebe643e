"""Test helpers for every service: a fresh database and RabbitMQ vhost per test, the app running in
process, and a subscriber that records what was published. Loaded as a pytest plugin by the root
conftest.py. Everything talks to the real local PostgreSQL and RabbitMQ; all of it is removed after."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import jsonschema
import pytest
from aio_pika.abc import AbstractIncomingMessage
from fastapi import FastAPI
from fastapi.routing import APIRoute

from eventkit import broker_users, db
from eventkit.batching import BatchingConsumer
from eventkit.clock import TOKYO
from eventkit.consumer import Consumer, Verdict
from eventkit.credentials import user_of
from eventkit.db import Conn
from eventkit.store import LOAD_STREAM
from eventkit.topology import declare_exchange
from secondopinion_contracts import EXCHANGE, CloudEvent, EventData
from secondopinion_contracts.schemas import SCHEMA_DIR

POSTGRES_BASE = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_MANAGEMENT = os.environ.get("TEST_RABBITMQ_MANAGEMENT", f"http://{RABBITMQ_HOST}:15672")
RABBITMQ_USER = os.environ.get("TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("TEST_RABBITMQ_PASSWORD", "guest")


async def fetch(database: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query on a service's database, on a connection of its own (what the test sees from outside)."""
    conn = await asyncpg.connect(database)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def scalar(database: str, query: str, *args: Any) -> Any:
    return (await fetch(database, query, *args))[0][0]


@dataclass
class SettableClock:
    """A service's clock, set and moved by the test: the desk's rules depend on the day and the hour."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def set_tokyo(self, day: date | str, at: time = time(12, 0)) -> None:
        """Move to `day` (a date or YYYY-MM-DD) at `at`, Tokyo time."""
        day = date.fromisoformat(day) if isinstance(day, str) else day
        self.now = datetime.combine(day, at, tzinfo=TOKYO).astimezone(UTC)

    @classmethod
    def at_tokyo(cls, day: date | str, at: time = time(12, 0)) -> SettableClock:
        clock = cls(datetime.now(UTC))
        clock.set_tokyo(day, at)
        return clock


def assert_valid(envelope: CloudEvent) -> None:
    """The event's data is valid against its checked-in JSON Schema, and the envelope against its own: what a
    subscriber validating against the published contracts would see."""
    schema = SCHEMA_DIR / envelope.service / f"{envelope.event_name}.v{envelope.event_version}.json"
    jsonschema.validate(envelope.data, json.loads(schema.read_text()))
    jsonschema.validate(json.loads(envelope.to_json_bytes()), json.loads((SCHEMA_DIR / "envelope.json").read_text()))


def bearer(*roles: str, subject: str = "staff-test", departments: Sequence[str] | None = None,
           **claims: Any) -> dict[str, str]:
    """An Authorization header with a development token holding `roles` (all of them when none given), working in
    `departments` (every department when not given)."""
    from eventkit.auth import ROLES, mint_development_token
    from eventkit.staff import DEFAULT_DEPARTMENTS

    described = {"departments": list(DEFAULT_DEPARTMENTS if departments is None else departments), **claims}
    return {"Authorization": f"Bearer {mint_development_token(subject, list(roles or ROLES), **described)}"}


async def erase_personal_data(intake: httpx.AsyncClient, case_id: object) -> httpx.Response:
    """A case's personal data erased as the desk does it: one privacy officer requests it, a second approves;
    the approval's answer."""
    erasure = f"/cases/{case_id}/personal-data/erasure"
    requested = await intake.post(erasure, headers=bearer("privacy_officer", subject="privacy-1"))
    assert requested.status_code == 202, requested.text
    return await intake.post(f"{erasure}/approval", headers=bearer("privacy_officer", subject="privacy-2"))


# A harness that runs services as processes (tests/faults, bench) cannot move their clocks between two requests.
# With `with_request_instant` and `RequestInstant` a request may say what time it is for itself: the
# consultation completed after its start, on a clock that otherwise stands still. Never in production code.
REQUEST_CLOCK_HEADER = "X-Test-Clock"
_request_instant: ContextVar[datetime | None] = ContextVar("request_instant", default=None)


def with_request_instant(clock: Callable[[], datetime]) -> Callable[[], datetime]:
    """`clock`, except within a request that carried REQUEST_CLOCK_HEADER: that instant."""

    def now() -> datetime:
        return _request_instant.get() or clock()

    return now


class RequestInstant:
    """ASGI middleware setting the instant of a request that names one in REQUEST_CLOCK_HEADER (ISO 8601)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        header = REQUEST_CLOCK_HEADER.lower().encode()
        named = next((value for key, value in scope.get("headers", ()) if key == header), None)
        if scope["type"] != "http" or named is None:
            await self.app(scope, receive, send)
            return
        token = _request_instant.set(datetime.fromisoformat(named.decode()))
        try:
            await self.app(scope, receive, send)
        finally:
            _request_instant.reset(token)


def unique(prefix: str) -> str:
    return f"t_{prefix}_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def fresh_database(prefix: str = "db") -> AsyncIterator[str]:
    dsn = f"{POSTGRES_BASE}/{unique(prefix)}"
    await db.create_database_if_missing(dsn)
    try:
        yield dsn
    finally:
        await db.drop_database(dsn)


# The services' broker users every test vhost has ("testsvc": what eventkit's own tests name their service).
TEST_SERVICES = (*broker_users.SERVICES, "testsvc")


@asynccontextmanager
async def fresh_vhost() -> AsyncIterator[str]:
    """A RabbitMQ vhost of its own (management API), so queues and exchanges never collide, with the exchanges and
    each service's broker user (eventkit.broker_users). The URL is the administrator's (who may publish anything,
    as a forger could); a service's settings replace its credentials with the service's own."""
    name = unique("vhost")
    auth = (RABBITMQ_USER, RABBITMQ_PASSWORD)
    async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=auth, timeout=30) as client:
        response = await client.put(f"/api/vhosts/{name}")
        response.raise_for_status()
        response = await client.put(f"/api/permissions/{name}/{RABBITMQ_USER}",
                                    json={"configure": ".*", "write": ".*", "read": ".*"})
        response.raise_for_status()
        try:
            url = f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:5672/{quote(name, safe='')}"
            await broker_users.set_up(RABBITMQ_MANAGEMENT, auth, name, broker_users.passwords_from_environment(
                TEST_SERVICES), amqp_admin_url=url, services=TEST_SERVICES)
            yield url
        finally:
            await client.delete(f"/api/vhosts/{name}")


async def close_broker_connections(amqp_url: str) -> int:
    """Cut every client connection of the URL's vhost, as a broker restart or `rabbitmqctl
    close_all_connections` would; returns how many were closed."""
    vhost = amqp_url.rstrip("/").rsplit("/", 1)[-1]
    auth = (RABBITMQ_USER, RABBITMQ_PASSWORD)
    async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=auth, timeout=30) as client:
        connections = (await client.get(f"/api/vhosts/{vhost}/connections")).json()
        for connection in connections:
            await client.delete(f"/api/connections/{quote(connection['name'], safe='')}",
                                headers={"X-Reason": "fault injection by a test"})
    return len(connections)


@dataclass
class EventCollector:
    """A subscriber bound to the events exchange that keeps every message it receives."""

    url: str
    binding: str = "#"
    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    _connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> EventCollector:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        exchange = await declare_exchange(channel, EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key=self.binding)
        await queue.consume(self._keep, no_ack=True)
        return self

    async def _keep(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def envelopes(self) -> list[CloudEvent]:
        return [CloudEvent.model_validate_json(message.body) for message in self.messages]

    def of_type(self, event_name: str) -> list[CloudEvent]:
        return [envelope for envelope in self.envelopes if envelope.event_name == event_name]

    async def wait_for(self, predicate: Callable[[list[CloudEvent]], bool], timeout: float = 10.0) -> list[CloudEvent]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.envelopes):
            if asyncio.get_running_loop().time() > deadline:
                names = [envelope.event_name for envelope in self.envelopes]
                raise AssertionError(f"events not seen in {timeout}s; got {names}")
            await asyncio.sleep(0.05)
        return self.envelopes

    async def wait_count(self, count: int, timeout: float = 10.0) -> list[CloudEvent]:
        return await self.wait_for(lambda envelopes: len(envelopes) >= count, timeout)


@asynccontextmanager
async def running_app(app: FastAPI, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The service app with its lifespan (runtime started), and an HTTP client talking to it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers or {},
                                     timeout=30) as client:
            yield client


class AsOwners:
    """The events exchange as each service's own broker user, one connection each, opened when first needed:
    `publish` sends a message as the service its routing key names, with that user_id, as the service's relay
    would (consumers dead-letter an event its owner did not publish); other keys as the URL's own user."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connections: list[aio_pika.abc.AbstractConnection] = []
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._opening = asyncio.Lock()  # publishes pipelined at once open one connection per user

    def user_for(self, routing_key: str) -> str:
        service = routing_key.split(".", 1)[0]
        return service if service in TEST_SERVICES else user_of(self.url)

    async def exchange(self, user: str) -> aio_pika.abc.AbstractExchange:
        async with self._opening:
            return self._exchanges.get(user) or await self._open(user)

    async def _open(self, user: str) -> aio_pika.abc.AbstractExchange:
        if user not in self._exchanges:
            url = self.url if user == user_of(self.url) else broker_users.service_url(self.url, user)
            connection = await aio_pika.connect(url)
            self._connections.append(connection)
            channel = await connection.channel(publisher_confirms=True)
            self._exchanges[user] = await declare_exchange(channel, EXCHANGE, passive=True)
        return self._exchanges[user]

    async def publish(self, message: aio_pika.Message, routing_key: str, *, as_user: str | None = None,
                      timeout: float | None = None) -> None:
        """`message` as `as_user` (default: the routing key's owner); its user_id, unless set, that user's name
        ("" publishes none)."""
        user = as_user or self.user_for(routing_key)
        if message.user_id is None:
            message.user_id = user
        elif not message.user_id:
            message.user_id = None
        await (await self.exchange(user)).publish(message, routing_key=routing_key, timeout=timeout)

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()
        self._connections.clear()
        self._exchanges.clear()

    async def __aenter__(self) -> AsOwners:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def publish_raw(url: str, body: bytes, routing_key: str, *, message_id: str | None = None,
                      correlation_id: str | None = None, headers: dict[str, Any] | None = None,
                      as_user: str | None = None, user_id: str | None = None) -> None:
    """Publish bytes to the events exchange (for poison-message tests), as broker user `as_user`: by default the
    service the routing key names, as its relay would, else the URL's own user. `user_id`: the AMQP user_id sent
    (default: the user's own name; "" for none)."""
    async with AsOwners(url) as owners:
        await owners.publish(aio_pika.Message(body=body, message_id=message_id or str(uuid.uuid4()),
                                              correlation_id=correlation_id, headers=headers or {}, user_id=user_id,
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                             routing_key, as_user=as_user)


async def drain_queue(url: str, queue_name: str, timeout: float = 10.0,
                      until: Callable[[list[AbstractIncomingMessage]], bool] = bool) -> list[AbstractIncomingMessage]:
    """Take the messages of a queue (e.g. a DLQ) until `until` holds or the time is up."""
    connection = await aio_pika.connect(url)
    taken: list[AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                if until(taken):
                    break
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append(message)
    finally:
        await connection.close()
    return taken


def make_envelope(event: EventData, *, sequence: int = 1, subject: str | None = None,
                  event_id: uuid.UUID | None = None, time: datetime | None = None) -> CloudEvent:
    """An envelope as the event's owning service would publish it (to feed a consumer in tests)."""
    case_id = subject or str(getattr(event, "case_id", "")) or str(uuid.uuid4())
    return CloudEvent(
        id=event_id or uuid.uuid4(), source=f"/secondopinion/{event.SERVICE}", type=event.type_name(),
        subject=case_id, time=time or datetime.now(UTC), dataschema=event.schema_uri(),
        data=event.model_dump(mode="json"), sequence=sequence, correlationid=case_id,
        actorid=event.SERVICE, actorrole="system",
    )


class StatementLog:
    """The statements a connection sends (asyncpg's query logger) until closed."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.queries: list[str] = []
        conn.add_query_logger(self._note)

    def _note(self, record: Any) -> None:
        self.queries.append(record.query)

    async def statements(self) -> list[str]:
        await asyncio.sleep(0)  # asyncpg calls its loggers soon after a statement, not in it
        return self.queries

    async def stream_loads(self) -> int:
        """How many single streams were loaded, one statement each."""
        return (await self.statements()).count(LOAD_STREAM)

    def close(self) -> None:
        self.conn.remove_query_logger(self._note)


async def statements_of_one_batch(consumer: Consumer, events: Sequence[EventData]) -> list[str]:
    """Hands `events` to `consumer` together, as deliveries in hand are (one batch, for events of different cases),
    and returns the statements the batch sent from its handlers' start to its commit."""
    assert isinstance(consumer, BatchingConsumer)
    assert consumer.batch_scope is not None
    scope = consumer.batch_scope
    logs: list[StatementLog] = []

    async def stop_logging(conn: Conn, logs_due: list[StatementLog]) -> None:
        for log in logs_due:
            log.close()

    @asynccontextmanager
    async def logged(conn: Conn, load_ahead: Sequence[str]) -> AsyncIterator[None]:
        log = StatementLog(conn)
        logs.append(log)
        try:
            async with scope(conn, load_ahead):
                yield
        except BaseException:
            log.close()
            raise
        # Asked for last, so it runs after what the handlers asked to be done before the commit.
        if not db.before_commit(conn, stop_logging, log):
            log.close()

    consumer.batch_scope = logged
    try:
        outcomes = await asyncio.gather(*(consumer.process(make_envelope(event).to_json_bytes()) for event in events))
    finally:
        consumer.batch_scope = scope
    statements = [await log.statements() for log in logs]
    assert {outcome.verdict for outcome in outcomes} == {Verdict.DONE}, outcomes
    assert len(statements) == 1, f"handled in {len(statements)} batches, not one"
    return statements[0]


async def streams_loaded_one_by_one(consumer: Consumer, events: Sequence[EventData]) -> int:
    """How many streams the handlers of one batch of `events` loaded one statement each: none when every handler
    names the streams it loads (`LoadsStreams`) or the batch has learned them, and reads them ahead in one."""
    return (await statements_of_one_batch(consumer, events)).count(LOAD_STREAM)


async def publish_event(url: str, event: EventData, **envelope: Any) -> CloudEvent:
    """Publish a contract event on the bus as its owning service would; returns the envelope sent."""
    sent = make_envelope(event, **envelope)
    await publish_raw(url, sent.to_json_bytes(), sent.routing_key, message_id=str(sent.id),
                      correlation_id=sent.correlationid)
    return sent


def decode_body(message: AbstractIncomingMessage) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.body)
    return body


Waiter = Callable[[], Awaitable[Any]]


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database() as dsn:
        yield dsn


@pytest.fixture
async def rabbitmq_url() -> AsyncIterator[str]:
    async with fresh_vhost() as url:
        yield url


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI keeps those behind a wrapper)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def allowed_roles(route: APIRoute) -> set[str]:
    """The roles the route's authorization dependency (eventkit.auth.allow) lets in; empty for open routes."""
    found: set[str] = set()

    def walk(dependant: Any) -> None:
        roles = getattr(dependant.call, "allowed_roles", None)
        if roles:
            found.update(roles)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


# --- browser tests: an app on a real local port, and Debian's Chromium for Playwright ----------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> str:
    """Debian's Chromium, installed by scripts/install-chromium.sh if missing; a loud skip only if it cannot be."""
    import subprocess
    import sys
    from pathlib import Path

    installer = Path(__file__).resolve().parents[3] / "scripts" / "install-chromium.sh"
    if not Path(CHROMIUM).exists() and installer.exists():
        subprocess.run(["bash", str(installer)], check=False, timeout=600)  # noqa: S603, S607
    if not Path(CHROMIUM).exists():
        reason = f"BROWSER TEST NOT RUN: {CHROMIUM} is missing and {installer.name} could not install it"
        print(f"\n*** {reason} ***", file=sys.stderr)
        pytest.skip(reason)
    return CHROMIUM


@asynccontextmanager
async def serving(app: FastAPI, port: int = 0) -> AsyncIterator[str]:
    """The app under uvicorn on a local port (a free one unless given), in this event loop (its lifespan starts
    it); yields its URL."""
    import socket

    import uvicorn

    from eventkit.runtime import wait_until

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done(), timeout=30)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def free_port() -> int:
    """A local TCP port free now (for a server that must know its address before it starts)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
