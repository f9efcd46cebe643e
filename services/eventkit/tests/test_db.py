"""eventkit.db: what `after_commit` registers runs once the transaction has committed, and only then; pooled
connections go back without a reset query yet keep no transaction; a read whose connection died is tried again."""

from __future__ import annotations

import asyncpg
import pytest

from eventkit import db


async def test_hooks_run_once_after_the_commit_and_not_after_a_rollback(pool: asyncpg.Pool) -> None:
    calls: list[str] = []

    def committed() -> None:
        calls.append("committed")

    async with db.transaction(pool) as conn:
        await conn.execute("INSERT INTO inbox (message_id, event_type) VALUES ('m-1', 't')")
        assert db.after_commit(conn, committed)
        assert db.after_commit(conn, committed)
        assert calls == [], "not before the commit"
    assert calls == ["committed"]

    async def fail_after_registering() -> None:
        async with db.transaction(pool) as conn:
            await conn.execute("INSERT INTO inbox (message_id, event_type) VALUES ('m-2', 't')")
            db.after_commit(conn, committed)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await fail_after_registering()
    assert calls == ["committed"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 1


async def test_a_transaction_opened_elsewhere_takes_no_hook(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        assert not db.after_commit(conn, lambda: None)
    async with db.transaction(pool) as outer, pool.acquire() as other:
        assert not db.after_commit(other, lambda: None), "a hook belongs to the connection whose transaction it is"
        assert db.after_commit(outer, lambda: None)


async def test_a_released_connection_keeps_no_transaction(pool: asyncpg.Pool, database: str) -> None:
    """Released without asyncpg's reset query, a connection left inside a transaction is still rolled back."""
    single = await db.create_pool(database, max_size=1)
    try:
        async with single.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO inbox (message_id, event_type) VALUES ('left-open', 't')")
        async with single.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = 'left-open'") == 0
    finally:
        await single.close()


async def test_a_read_whose_connection_is_terminated_is_tried_again_on_another(pool: asyncpg.Pool) -> None:
    backends: list[int] = []

    @db.retried_read
    async def read_once_killed() -> int:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            backends.append(backend)
            if len(backends) == 1:
                # What a restart or an operator does to a connection that sits idle in the pool.
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            answer: int = await conn.fetchval("SELECT 42")
            return answer

    assert await read_once_killed() == 42
    assert len(backends) == 2
    assert backends[0] != backends[1], "the second attempt ran on a new connection"


async def test_a_read_that_keeps_failing_gives_up_with_the_error(pool: asyncpg.Pool) -> None:
    attempts = 0

    @db.retried_read
    async def always_killed() -> None:
        nonlocal attempts
        attempts += 1
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(db.TRANSIENT_DB_ERRORS):
        await always_killed()
    assert attempts == db.READ_ATTEMPTS
