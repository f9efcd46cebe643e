"""The command line every service shares: `python -m <service> serve|migrate|rebuild|check`, and a service's own
maintenance commands (intake: `reindex-search`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import uvicorn
from fastapi import FastAPI

from eventkit import db, db_roles, logs
from eventkit.runtime import ServiceRuntime, UnsafeConfiguration
from eventkit.settings import ServiceSettings

HOW_TO_START = {
    "database": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "broker": "start it with: rabbitmq-server -detached",
}


async def _check_reachable(settings: ServiceSettings) -> str | None:
    import aio_pika

    try:
        await db.create_database_if_missing(settings.owner_database_url)
    except (OSError, Exception) as error:
        return (f"{settings.service}: PostgreSQL is unreachable at {_redact(settings.owner_database_url)} "
                f"({error.__class__.__name__}); {HOW_TO_START['database']}")
    try:
        connection = await aio_pika.connect(settings.rabbitmq_url, timeout=5)
        await connection.close()
    # A wrong password fails the login; a user without permissions in the vhost is closed while opening it.
    except (aio_pika.exceptions.ProbableAuthenticationError, aio_pika.exceptions.InvalidFrameError):
        return (f"{settings.service}: RabbitMQ refused the broker user {settings.service!r} at "
                f"{_redact(settings.rabbitmq_url)}: set up the broker's users in that vhost with "
                f"`python -m eventkit.broker_users` (`make run` does), or set "
                f"{settings.service.upper()}_RABBITMQ_PASSWORD")
    except Exception as error:
        return (f"{settings.service}: RabbitMQ is unreachable at {_redact(settings.rabbitmq_url)} "
                f"({error.__class__.__name__}); {HOW_TO_START['broker']}")
    return None


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if at and ":" in credentials else url


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events")
    sys.stderr.flush()


async def _rebuild(runtime: ServiceRuntime) -> int:
    await runtime.start(relay=False, consume=False)
    try:
        count = await runtime.rebuild(_progress)
    finally:
        await runtime.stop()
    sys.stderr.write("\n")
    return count


# A service's own maintenance command: run with its settings, it answers what it did in a line.
Maintenance = Callable[[ServiceSettings], Coroutine[Any, Any, str]]


def main(settings_type: type[ServiceSettings], runtime_for: Callable[[ServiceSettings], ServiceRuntime],
         build: Callable[[ServiceSettings], FastAPI], maintenance: Mapping[str, Maintenance] | None = None) -> None:
    maintenance = maintenance or {}
    parser = argparse.ArgumentParser(prog=f"python -m {settings_type().service}")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "migrate", "rebuild", "check", *maintenance])
    args = parser.parse_args()
    settings = settings_type()
    logs.configure(settings.service, settings.log_level)
    problem = asyncio.run(_check_reachable(settings))
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    if args.command == "check":
        return
    if args.command == "migrate":
        applied = asyncio.run(db_roles.prepare(settings, runtime_for(settings).migrations))
        print(f"{settings.service}: {len(applied)} migration(s) applied", file=sys.stderr)
        return
    if args.command in maintenance:
        print(f"{settings.service}: {asyncio.run(maintenance[args.command](settings))}", file=sys.stderr)
        return
    if args.command == "rebuild":
        count = asyncio.run(_rebuild(runtime_for(settings)))
        print(f"{settings.service}: projections rebuilt from {count} events", file=sys.stderr)
        return
    serve(build, settings)


def serve(build: Callable[[Any], FastAPI], settings: Any) -> None:
    """Serve the app `build` makes of `settings` (their `http_host`, `http_port`) until stopped; exit 3 if the
    settings are unsafe for the profile (the refusal printed)."""
    try:
        app = build(settings)
    except UnsafeConfiguration as refusal:
        print(refusal, file=sys.stderr)
        raise SystemExit(3) from None
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=20)
