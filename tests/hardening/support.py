"""Shared by the hardening tests: each service's app built on a fresh database and vhost as its own tests
build it, the roles each route allows, the app served over real HTTP in the test's event loop, and a bridge
that lets a (synchronous) Hypothesis run in a worker thread await coroutines on that loop."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from eventkit.service_identity import IntakeDisclosure, intake_disclosure
from eventkit.testing import allowed_roles, api_routes

SERVICES = ("intake", "scheduling", "billing", "reporting")
# The services with an inbox (intake consumes nothing).
CONSUMERS = ("scheduling", "billing", "reporting")

T = TypeVar("T")

# The same examples every run by default (modest counts that keep tests/hardening to about a minute and a half).
# HARDENING_EXAMPLES=N asks for a deeper run with N examples per fuzzed operation or inbox and fresh random ones
# each time (with `--timeout 0`: it outlasts pytest's per-test limit).
DEEP_RUN = "HARDENING_EXAMPLES" in os.environ


def examples(default: int) -> int:
    return int(os.environ.get("HARDENING_EXAMPLES", default))


@asynccontextmanager
async def service_app(service: str, database: str, rabbitmq_url: str, **settings: Any) -> AsyncIterator[FastAPI]:
    """`<service>.app.build(settings)` on `database` and `rabbitmq_url` (lifespan not started). Billing charges
    through a gateway simulator served for the duration, as billing's own tests do."""
    common: dict[str, Any] = {"RABBITMQ_URL": rabbitmq_url, "OUTBOX_SWEEP_SECONDS": 0.2, **settings}
    if service == "intake":
        from intake.bootstrap import build as build_intake
        from intake.settings import IntakeSettings

        yield build_intake(IntakeSettings(INTAKE_DATABASE_URL=database, **common))
    elif service == "scheduling":
        from scheduling.bootstrap import build as build_scheduling
        from scheduling.settings import SchedulingSettings

        yield build_scheduling(SchedulingSettings(SCHEDULING_DATABASE_URL=database, **common),
                               personal_data=intake_stand_in("reporting"))
    elif service == "billing":
        from billing.bootstrap import build as build_billing
        from billing.gateway_simulator import running_simulator
        from billing.testing import settings_for_tests

        async with running_simulator() as (gateway_url, _):
            yield build_billing(settings_for_tests(database, rabbitmq_url, gateway_url, **settings))
    elif service == "reporting":
        from reporting.bootstrap import build as build_reporting
        from reporting.settings import ReportingSettings

        yield build_reporting(ReportingSettings(REPORTING_DATABASE_URL=database, **common),
                              personal_data=intake_stand_in("reporting"))
    else:
        raise ValueError(f"no such service: {service}")


def intake_stand_in(service: str) -> IntakeDisclosure:
    """Intake's disclosure route as it answers for an erased case: the fuzzed service's own inputs are under test,
    not intake (which is fuzzed on its own)."""
    from intake.domain import PURPOSES

    def answer(request: httpx.Request) -> httpx.Response:
        purpose = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"fields": dict.fromkeys(PURPOSES[purpose].fields, "***")})

    return intake_disclosure(service, "http://intake", transport=httpx.MockTransport(answer))


def roles_by_operation(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """(METHOD, path template) -> allowed roles, for every route of the app."""
    return {(method, route.path): allowed_roles(route)
            for route in api_routes(app.routes) for method in route.methods or ()}


@asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1", lifespan: bool = True) -> AsyncIterator[str]:
    """Serve the app (lifespan included, unless it runs elsewhere already) over real HTTP on a free local port in
    this event loop; yields its base URL. The app's runtime then lives on this loop, like an app under
    `running_app`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on" if lifespan else "off",
                                           timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class LoopBridge:
    """Runs coroutines on the test's event loop from the worker thread a synchronous Hypothesis run is in
    (the loop keeps serving the app and the broker meanwhile, because the test awaits the worker)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float = 60.0) -> None:
        self.loop = loop
        self.timeout = timeout

    def run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_awaited(coroutine), self.loop).result(self.timeout)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
