"""The catch-up feed: a service's published events, paged in a stable order that never skips an event whose
transaction commits after a later one's, exactly as published, for the `integration` role only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from types import SimpleNamespace
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from eventkit import feed
from eventkit.auth import AuthSettings, TokenVerifier
from eventkit.events import Actor, CommandContext, PrivateEvent
from eventkit.store import EventStore, EventTypes
from eventkit.testing import bearer, fresh_database
from secondopinion_contracts import CloudEvent
from secondopinion_contracts.codes import DocumentKind
from secondopinion_contracts.events.intake import DocumentReceived


class NoteTaken(PrivateEvent):
    NAME: ClassVar[str] = "NoteTaken"
    text: str


TYPES = EventTypes.of(DocumentReceived, NoteTaken)
CONTEXT = CommandContext(actor=Actor(id="coord-1", role="coordinator"), correlation_id="case", causation_id="c",
                         command="Test")


def document() -> DocumentReceived:
    return DocumentReceived(case_id=uuid.uuid4(), document_id=uuid.uuid4(), kind=DocumentKind.TEST_RESULTS,
                            received_on=date(2026, 12, 1))


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, service="intake", types=TYPES)


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = SimpleNamespace(pool=pool)
    app.state.token_verifier = TokenVerifier(AuthSettings())
    app.include_router(feed.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=bearer("integration")) as http:
        yield http


async def page(client: httpx.AsyncClient, after: str = "0", limit: int = 100) -> tuple[list[dict[str, Any]], str]:
    response = await client.get("/events", params={"after": after, "limit": limit})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == feed.BATCH_CONTENT_TYPE
    return response.json(), response.headers["next-position"]


async def everything(client: httpx.AsyncClient, after: str = "0", limit: int = 2) -> tuple[list[str], str]:
    ids: list[str] = []
    while True:
        events, after = await page(client, after, limit)
        if not events:
            return ids, after
        ids += [event["id"] for event in events]


async def test_pages_serve_the_published_bodies_in_order_and_only_published_events(
        store: EventStore, client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    written = []
    for _ in range(5):
        written += await store.append(f"case-{uuid.uuid4()}", "case", 0, [document(), NoteTaken(text="internal")],
                                      CONTEXT)
    published = [str(event.event_id) for event in written if event.name == "DocumentReceived"]
    first, after = await page(client, limit=3)
    assert [event["id"] for event in first] == published[:3]
    rest, end = await everything(client, after)
    assert rest == published[3:]
    assert (await page(client, end))[0] == []  # at the head: the same position again
    bodies = {str(row["event_id"]): json.loads(row["body"]) for row in await pool.fetch("SELECT * FROM outbox")}
    assert first == [bodies[event["id"]] for event in first]
    assert all(CloudEvent.model_validate(event).specversion == "1.0" for event in first)
    link = (await client.get("/events", params={"after": after, "limit": 2})).headers["link"]
    assert link.endswith('; rel="next"')
    assert "limit=2" in link


async def test_an_event_committed_after_a_later_one_is_not_skipped(
        store: EventStore, client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # The late one takes its transaction id first but its outbox row last; the early one the other way round.
    async with pool.acquire() as late, pool.acquire() as early:
        late_transaction = late.transaction()
        await late_transaction.start()
        await late.fetchval("SELECT pg_current_xact_id()")
        early_transaction = early.transaction()
        await early_transaction.start()
        [held] = await store.append("case-held", "case", 0, [document()], CONTEXT, conn=early)
        [late_one] = await store.append("case-late", "case", 0, [document()], CONTEXT, conn=late)
        await late_transaction.commit()  # now `late_one` is visible, with a higher row id than `held`
        seen_first, after = await everything(client)
        assert seen_first == [str(late_one.event_id)]
        await early_transaction.commit()
    seen_then, _ = await everything(client, after)
    assert seen_then == [str(held.event_id)]


async def test_a_page_waits_for_an_older_transaction_still_running(
        store: EventStore, client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        [older] = await store.append("case-older", "case", 0, [document()], CONTEXT, conn=conn)
        [newer] = await store.append("case-newer", "case", 0, [document()], CONTEXT)
        seen_first, after = await everything(client)
        assert seen_first == []  # `newer` would be behind `older` once that commits
        await transaction.commit()
    assert (await everything(client, after))[0] == [str(older.event_id), str(newer.event_id)]


def txid(position: str) -> int:
    return int(position.split(".")[0])


async def test_the_headers_say_when_everything_committed_before_a_request_is_in_the_feed(
        store: EventStore, client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await store.append("case-older", "case", 0, [document()], CONTEXT, conn=conn)
        await store.append("case-newer", "case", 0, [document()], CONTEXT)
        response = await client.get("/events")
        head = response.headers["head-position"]
        assert txid(response.headers["complete-before"]) < txid(head), "the older transaction is still running"
        await transaction.commit()
    response = await client.get("/events")
    assert len(response.json()) == 2
    assert txid(response.headers["complete-before"]) >= txid(head)


async def test_a_transaction_of_another_database_holds_nothing_up(store: EventStore, client: httpx.AsyncClient) -> None:
    async with fresh_database("elsewhere") as other_dsn:
        other = await asyncpg.connect(other_dsn)
        try:
            async with other.transaction():
                await other.fetchval("SELECT pg_current_xact_id()")
                [event] = await store.append("case-x", "case", 0, [document()], CONTEXT)
                assert (await everything(client))[0] == [str(event.event_id)]
        finally:
            await other.close()


@pytest.mark.parametrize(("params", "status"), [
    ({"after": "12"}, 422), ({"after": "1.x"}, 422), ({"after": "-1.2"}, 422), ({"limit": 0}, 422),
    ({"limit": 1001}, 422), ({"after": "0"}, 200), ({"after": "123.456", "limit": 1000}, 200),
])
async def test_a_bad_position_or_limit_is_a_readable_4xx(client: httpx.AsyncClient, params: dict[str, Any],
                                                          status: int) -> None:
    response = await client.get("/events", params=params)
    assert response.status_code == status, response.text


async def test_only_the_integration_role_reads_the_feed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/events", headers={"Authorization": ""})).status_code == 401
    for role in ("coordinator", "physician", "cashier", "auditor"):
        assert (await client.get("/events", headers=bearer(role))).status_code == 403

