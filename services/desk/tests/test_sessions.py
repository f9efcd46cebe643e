"""The session store against its real database: an access token about to expire is renewed with the refresh
token, once however many replicas or tabs ask at the same moment; a refused renewal ends the session at the
token's expiry, not before; and a page's live check does not keep an idle person signed in."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from desk.bootstrap import MIGRATIONS
from desk.sessions import SessionStore, Tokens
from eventkit import db

KEY = base64.b64decode("oJq0ndm3a3yE3mT0s1ZQ5o0p8lW6m1C8r2QyG8dB2vY=")


class Provider:
    """The identity provider's refresh grant as the store sees it: counts each call; rotates refresh tokens."""

    def __init__(self, lifetime: timedelta = timedelta(minutes=5)) -> None:
        self.calls: list[str] = []
        self.lifetime = lifetime
        self.refusing = False

    async def renew(self, refresh_token: str) -> Tokens:
        self.calls.append(refresh_token)
        await asyncio.sleep(0.05)  # a round trip, during which a second replica asks too
        if self.refusing:
            raise RuntimeError("invalid_grant")
        n = len(self.calls)
        return Tokens(f"access-{n}", datetime.now(UTC) + self.lifetime, refresh_token=f"refresh-{n}")


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(database, [MIGRATIONS])
    connection_pool = await db.create_pool(database, max_size=4)
    yield connection_pool
    await connection_pool.close()


def store(pool: asyncpg.Pool, provider: Provider | None) -> SessionStore:
    return SessionStore(pool, timedelta(minutes=30), KEY, renew=provider.renew if provider else None,
                        renew_before=timedelta(seconds=60))


FIRST_REFRESH_TOKEN = "refresh-0"


async def signed_in(sessions: SessionStore, expires_in: timedelta,
                    refresh_token: str | None = FIRST_REFRESH_TOKEN) -> str:
    session = await sessions.create(subject="coord-1", display_name="受付 花子", roles=["coordinator"],
                                    access_token="access-0", token_expires_at=datetime.now(UTC) + expires_in,
                                    refresh_token=refresh_token)
    return session.id


async def test_a_token_about_to_expire_is_renewed_once_for_every_replica_asking_at_once(pool: asyncpg.Pool) -> None:
    provider = Provider()
    replicas = [store(pool, provider), store(pool, provider)]
    session_id = await signed_in(replicas[0], timedelta(seconds=30))
    seen = await asyncio.gather(*(replicas[i % 2].get(session_id) for i in range(6)))
    assert provider.calls == ["refresh-0"], "one renewal: the others found its tokens"
    assert {s.access_token for s in seen if s} == {"access-1"}
    later = await replicas[1].get(session_id)
    assert later is not None
    assert later.token_expires_at > datetime.now(UTC) + timedelta(minutes=4)
    # The rotated refresh token is the one kept: the next renewal spends it, not the first.
    await pool.execute("UPDATE desk_sessions SET token_expires_at = now() + interval '10 seconds'")
    renewed = await replicas[0].get(session_id)
    assert renewed is not None
    assert (provider.calls, renewed.access_token) == (["refresh-0", "refresh-1"], "access-2")


async def test_a_token_far_from_expiry_is_not_renewed(pool: asyncpg.Pool) -> None:
    provider = Provider()
    sessions = store(pool, provider)
    session_id = await signed_in(sessions, timedelta(minutes=10))
    session = await sessions.get(session_id)
    assert (session is not None and session.access_token, provider.calls) == ("access-0", [])


async def test_a_refused_renewal_keeps_the_session_until_its_token_expires_then_ends_it(pool: asyncpg.Pool) -> None:
    provider = Provider()
    provider.refusing = True
    sessions = store(pool, provider)
    session_id = await signed_in(sessions, timedelta(seconds=30))
    still = await sessions.get(session_id)
    assert still is not None
    assert still.access_token == "access-0", "the token still works for its last seconds"
    await pool.execute("UPDATE desk_sessions SET token_expires_at = now() - interval '1 second'")
    assert await sessions.get(session_id) is None
    assert await pool.fetch("SELECT 1 FROM desk_sessions") == []


@pytest.mark.parametrize("provider", [Provider(), None], ids=["no refresh token", "no provider"])
async def test_without_a_way_to_renew_an_expired_token_ends_the_session(pool: asyncpg.Pool,
                                                                      provider: Provider | None) -> None:
    sessions = store(pool, provider)
    session_id = await signed_in(sessions, timedelta(seconds=-1), refresh_token=None)
    assert await sessions.get(session_id) is None
    assert provider is None or provider.calls == []


async def test_a_pages_live_check_does_not_restart_the_idle_clock(pool: asyncpg.Pool) -> None:
    sessions = store(pool, None)
    session_id = await signed_in(sessions, timedelta(hours=8))
    await pool.execute("UPDATE desk_sessions SET last_seen_at = now() - interval '29 minutes'")
    assert await sessions.get(session_id, activity=False) is not None
    [row] = await pool.fetch("SELECT last_seen_at < now() - interval '28 minutes' AS idle FROM desk_sessions")
    assert row["idle"], "the live check left the idle clock running"
    await pool.execute("UPDATE desk_sessions SET last_seen_at = now() - interval '31 minutes'")
    assert await sessions.get(session_id, activity=False) is None
