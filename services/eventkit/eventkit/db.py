"""PostgreSQL connections and plain-SQL migrations (versioned files, applied once, in order)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from eventkit.retry import doubling, retried

# What handlers and projections receive: a plain connection or one borrowed from the pool.
Conn = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

EVENTKIT_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x5EC0_0001  # advisory lock id: replicas starting together migrate one at a time

# Errors after which the same work may succeed if tried again: the database is restarting, a
# connection was cut, or it is overloaded. Handlers answer 503 and consumers requeue on these.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    # What asyncpg raises when a pooled connection whose backend was terminated (pg_terminate_backend, a
    # restart) is used before the pool noticed: "cannot switch to state ..; another operation is in progress".
    asyncpg.InternalClientError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT_DB_ERRORS)


def is_database_lost(error: BaseException) -> bool:
    """The database itself failed (down, restarting, connection cut): a group-committed batch's work done piece by
    piece would fail the same way. A deadlock or serialization failure is the batch's own doing: each alone may
    pass."""
    return is_transient(error) and not isinstance(error, asyncpg.SerializationError | asyncpg.DeadlockDetectedError)


READ_ATTEMPTS = 5  # within about 0.75 s: a connection whose server process was terminated is replaced at once

# A read (outside any transaction) that meets a transient error is tried again on another pooled connection.
#
# For the reads a command's answer is built from after its transaction committed, above all: failing there would
# answer 503 ("not recorded, try again") for a command that was recorded, and the client's retry would record it
# twice. A pooled connection can die unseen while idle (its server process terminated or restarted).
retried_read = retried(attempts=READ_ATTEMPTS, on=TRANSIENT_DB_ERRORS, wait=doubling(0.05))


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30,
                                     reset=_keep_session)
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection gets instead of asyncpg's reset query (`UNLISTEN *; RESET ALL;` and more): nothing,
    which saves a round trip per transaction. Nothing here changes a pooled connection's session: locks are
    transaction-scoped (`pg_advisory_xact_lock`), settings `SET LOCAL`, and listeners have connections of their own.
    asyncpg still rolls back a transaction left open before the connection is reused."""


BeforeCommit = Callable[[Conn, list[Any]], Awaitable[None]]


@dataclass
class _OpenTransaction:
    """The transaction `transaction()` has open in this task: what is to run just before it commits (each hook once,
    with the items handed to it) and once it has committed."""

    conn: Conn
    before: dict[BeforeCommit, list[Any]] = field(default_factory=dict)
    after: list[Callable[[], object]] = field(default_factory=list)


_open_transaction: ContextVar[_OpenTransaction | None] = ContextVar("eventkit_open_transaction", default=None)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Conn]:
    """A transaction on a pooled connection; what `before_commit` registers inside it runs at its end, in it, and
    what `after_commit` registers runs once it has committed."""
    async with pool.acquire() as conn:
        open_transaction = _OpenTransaction(conn)
        token = _open_transaction.set(open_transaction)
        try:
            async with conn.transaction():
                yield conn
                before = open_transaction.before
                while before:  # in the order first asked for; a hook may hand items to another
                    hook = next(iter(before))
                    await hook(conn, before.pop(hook))
        finally:
            _open_transaction.reset(token)
    for after in open_transaction.after:
        after()


def _opened_here(conn: Conn) -> _OpenTransaction | None:
    current = _open_transaction.get()
    return current if current is not None and current.conn is conn else None


def after_commit(conn: Conn, hook: Callable[[], object]) -> bool:
    """Runs `hook` (once) after `conn`'s transaction has committed, if `transaction()` opened it; False otherwise, and
    the caller has to find another way."""
    current = _opened_here(conn)
    if current is None:
        return False
    if hook not in current.after:
        current.after.append(hook)
    return True


def before_commit(conn: Conn, hook: BeforeCommit, item: Any) -> bool:
    """Hands `item` to `hook`, which runs once, with every item handed to it, at the end of `conn`'s transaction,
    inside it (its writes commit with the rest, its failure rolls all of it back): work that many steps of one
    transaction each ask for (a consumer's batch of deliveries) is done once for all of them. False when
    `transaction()` did not open the transaction: the caller does the work itself."""
    current = _opened_here(conn)
    if current is None:
        return False
    current.before.setdefault(hook, []).append(item)
    return True


def _database_of(dsn: str) -> tuple[str, str]:
    """Split a DSN into (maintenance DSN on database `postgres`, database name)."""
    head, _, tail = dsn.rpartition("/")
    name, _, query = tail.partition("?")
    maintenance = f"{head}/postgres" + (f"?{query}" if query else "")
    return maintenance, name


async def create_database_if_missing(dsn: str) -> bool:
    maintenance, name = _database_of(dsn)
    conn = await asyncpg.connect(maintenance)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await conn.close()


async def drop_database(dsn: str) -> None:
    maintenance, name = _database_of(dsn)
    conn = await asyncpg.connect(maintenance)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _migration_files(directories: Sequence[Path]) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for directory in directories:
        files += [(f"{directory.parent.name}/{path.name}", path) for path in sorted(directory.glob("*.sql"))]
    return files


async def migrate(dsn: str, directories: Sequence[Path]) -> list[str]:
    """Apply eventkit's migrations, then the service's, each once; returns the names applied now."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
        done = {row["name"]: row["checksum"] for row in rows}
        for name, path in _migration_files([EVENTKIT_MIGRATIONS, *directories]):
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise RuntimeError(f"migration {name} was changed after it was applied; add a new file instead")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
            applied_now.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied_now
