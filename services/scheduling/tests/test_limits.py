"""Limits at the edge on scheduling: a range to year 9999 (which once froze the service for minutes) is refused at
once saying the bound, and the largest request allowed leaves the service answering others meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from eventkit.testing import SettableClock, bearer, running_app
from scheduling.bootstrap import build
from scheduling.settings import SchedulingSettings

STAFF = bearer(subject="coord-limits")
PROMPT_SECONDS = 2.0  # generous on a shared two-core machine; the unbounded request took minutes


@pytest.fixture
async def scheduling(database: str, rabbitmq_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = SchedulingSettings(SCHEDULING_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    clock = SettableClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield client


def slots(first: str, last: str, start_times: list[str]) -> dict[str, object]:
    return {"physician_id": "dr-limits", "from": first, "to": last, "start_times": start_times,
            "duration_minutes": 30}


async def answered_promptly_meanwhile(client: httpx.AsyncClient, heavy: asyncio.Task[httpx.Response]) -> float:
    """The slowest answer to a light request while `heavy` runs."""
    slowest = 0.0
    while not heavy.done():
        started = time.perf_counter()
        assert (await client.get("/calendar/business-days", params={"from": "2026-12-01", "to": "2026-12-31"})
                ).status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return slowest


@pytest.mark.parametrize(("last", "bound"), [
    ("9999-12-31", "between 2000-01-01 and 2099-12-31"),
    ("2099-12-31", "at most 366 days"),
])
async def test_a_range_past_the_bound_is_refused_at_once_saying_it(scheduling: httpx.AsyncClient, last: str,
                                                                  bound: str) -> None:
    started = time.perf_counter()
    refused = await scheduling.post("/departments/cardiology/slots", json=slots("2026-12-02", last, ["09:00"]))
    assert refused.status_code == 422
    assert bound in refused.text
    assert time.perf_counter() - started < PROMPT_SECONDS


async def test_the_queries_bound_their_ranges_and_dates(scheduling: httpx.AsyncClient) -> None:
    for path, params in (("/calendar/business-days", {"from": "2026-12-01", "to": "9999-12-31"}),
                         ("/calendar/business-days", {"from": "9999-12-31"}),
                         ("/departments/cardiology/slots", {"from": "2026-01-01", "to": "2028-01-01"}),
                         ("/appointments", {"date": "0001-01-01"})):
        response = await scheduling.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)


async def test_the_largest_request_allowed_leaves_the_service_answering(scheduling: httpx.AsyncClient) -> None:
    # A year of business days at two times: the most slots one request may open (domain.MAX_SLOTS_PER_REQUEST).
    heavy = asyncio.create_task(scheduling.post("/departments/cardiology/slots",
                                                json=slots("2026-12-02", "2027-11-30", ["09:00", "10:00"])))
    slowest = await answered_promptly_meanwhile(scheduling, heavy)
    opened = await heavy
    assert opened.status_code == 201, opened.text[:300]
    assert len(opened.json()["opened"]) > 450
    assert slowest < PROMPT_SECONDS
    # The same range at three times is over the bound, refused saying so.
    over = await scheduling.post("/departments/cardiology/slots",
                                 json=slots("2026-12-02", "2027-11-30", ["13:00", "14:00", "15:00"]))
    assert over.status_code == 422
    assert "at most 500 slots" in over.text
