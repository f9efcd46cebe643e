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


async def test_work_due_before_the_commit_runs_once_with_every_item_inside_the_transaction(
        pool: asyncpg.Pool) -> None:
    runs: list[list[str]] = []

    async def note_all(conn: db.Conn, items: list[str]) -> None:
        runs.append(items)
        await conn.execute("INSERT INTO inbox (message_id, event_type) SELECT unnest($1::text[]), 'due'", items)

    async with db.transaction(pool) as conn:
        for item in ("a", "b", "c"):
            assert db.before_commit(conn, note_all, item)
        assert runs == [], "not before the transaction's end"
    assert runs == [["a", "b", "c"]], "once, with every item"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_type = 'due'") == 3

    async def fail_after_asking() -> None:
        async with db.transaction(pool) as conn:
            db.before_commit(conn, note_all, "d")
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        await fail_after_asking()
    assert runs == [["a", "b", "c"]], "not run for a transaction that is rolled back"

    async def failing(conn: db.Conn, items: list[str]) -> None:
        raise RuntimeError("the work due failed")

    async def write_then_fail_at_the_end() -> None:
        async with db.transaction(pool) as conn:
            await conn.execute("INSERT INTO inbox (message_id, event_type) VALUES ('e', 'body')")
            db.before_commit(conn, failing, "e")

    with pytest.raises(RuntimeError):
        await write_then_fail_at_the_end()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE message_id = 'e'") == 0, \
            "its failure rolls the transaction back"


async def test_a_transaction_opened_elsewhere_takes_no_hook(pool: asyncpg.Pool) -> None:
    async def nothing(conn: db.Conn, items: list[object]) -> None:
        return None

    async with pool.acquire() as conn, conn.transaction():
        assert not db.after_commit(conn, lambda: None)
        assert not db.before_commit(conn, nothing, 1)
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
