"""Before the tests: are PostgreSQL, RabbitMQ and its management API (used for per-test vhosts) up?
Says in one line what is missing and how to start it, instead of a wall of test errors."""

from __future__ import annotations

import asyncio
import sys

import aio_pika
import asyncpg
import httpx

from eventkit.testing import POSTGRES_BASE, RABBITMQ_MANAGEMENT, RABBITMQ_PASSWORD, RABBITMQ_USER


async def problems() -> list[str]:
    found = []
    try:
        conn = await asyncpg.connect(f"{POSTGRES_BASE}/postgres", timeout=5)
        await conn.close()
    except Exception as error:
        found.append(f"PostgreSQL unreachable at {POSTGRES_BASE} ({error.__class__.__name__}); start it with: "
                     "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    try:
        connection = await aio_pika.connect(f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@127.0.0.1:5672/", timeout=5)
        await connection.close()
    except Exception as error:
        found.append(f"RabbitMQ unreachable ({error.__class__.__name__}); start it with: rabbitmq-server -detached")
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            (await client.get(f"{RABBITMQ_MANAGEMENT}/api/overview", auth=(RABBITMQ_USER, RABBITMQ_PASSWORD))
             ).raise_for_status()
    except Exception as error:
        found.append(f"RabbitMQ management API unreachable ({error.__class__.__name__}); the tests create a vhost "
                     "each through it: rabbitmq-plugins enable rabbitmq_management")
    return found


def main() -> None:
    found = asyncio.run(problems())
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
