"""eventkit's test fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventkit import db


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database holding eventkit's own tables (events, outbox, inbox)."""
    await db.migrate(database, [])
    created = await db.create_pool(database)
    try:
        yield created
    finally:
        await created.close()
