"""The HTTP edge every service gets from create_app: security headers, self-served docs, rate limits."""

from __future__ import annotations

import re
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from eventkit.auth import allow
from eventkit.edge import EdgeSettings
from eventkit.events import Actor
from eventkit.runtime import ServiceRuntime, create_app
from eventkit.settings import ServiceSettings
from eventkit.store import EventTypes
from eventkit.testing import bearer

router = APIRouter()


@router.get("/things")
async def things(_: Annotated[Actor, Depends(allow("coordinator"))]) -> dict[str, list[str]]:
    return {"things": []}


@router.post("/things", status_code=201)
async def add_thing(_: Annotated[Actor, Depends(allow("coordinator"))]) -> dict[str, str]:
    return {"added": "yes"}


def edge_app(monkeypatch: pytest.MonkeyPatch, **environment: str) -> FastAPI:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    runtime = ServiceRuntime(ServiceSettings(service="edgetest"), types=EventTypes.of())
    # No lifespan: nothing here touches the database or the broker.
    return create_app(runtime, title="Edge test", description="", routers=[router])


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


HARDENING = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
             "strict-transport-security": "max-age=31536000; includeSubDomains"}


async def test_every_response_carries_the_security_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch)) as client:
        responses = [await client.get("/healthz"), await client.get("/things"),
                     await client.get("/things", headers=bearer("cashier")), await client.get("/nowhere"),
                     await client.get("/things", headers=bearer("coordinator")),
                     await client.post("/things", content=b"x" * 70_000, headers=bearer("coordinator")),
                     await client.get("/docs")]
    assert [r.status_code for r in responses] == [200, 401, 403, 404, 200, 413, 200]
    for response in responses:
        for name, value in HARDENING.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert responses[1].headers["content-security-policy"].startswith("default-src 'none'")
    assert responses[4].headers["cache-control"] == "no-store"
    assert "script-src 'self';" in responses[-1].headers["content-security-policy"]


async def test_the_docs_load_nothing_from_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch)) as client:
        pages = [await client.get("/docs"), await client.get("/redoc")]
        for page in pages:
            assert page.status_code == 200
            assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert assets
            assert all(asset.startswith("/docs/assets/") for asset in assets), assets
            assert "<script>" not in page.text  # no inline script: the page policy allows none
            for asset in assets:
                served = await client.get(asset)
                assert served.status_code == 200, asset
                assert len(served.content) > 100, asset
        assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text
        assert (await client.get("/docs/assets/..%2Fcore.py")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200


async def test_the_docs_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch, API_DOCS="false")) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/healthz")).status_code == 200


async def test_refused_sign_ins_are_limited_per_client(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch, RATE_LIMIT_FAILED_SIGNINS="3/minute")) as client:
        forged = {"Authorization": "Bearer not-a-token"}
        assert [(await client.get("/things", headers=forged)).status_code for _ in range(3)] == [401] * 3
        limited = await client.get("/things", headers=forged)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "at most 3 per 1 minute" in limited.json()["detail"]
        # Even a good token from that client waits; a request without one (a health probe) does not.
        assert (await client.get("/things", headers=bearer("coordinator"))).status_code == 429
        assert (await client.get("/healthz")).status_code == 200


async def test_writes_are_limited_per_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch, RATE_LIMIT_WRITES="2/minute")) as client:
        busy, other = bearer("coordinator", subject="busy"), bearer("coordinator", subject="other")
        assert [(await client.post("/things", headers=busy)).status_code for _ in range(2)] == [201, 201]
        limited = await client.post("/things", headers=busy)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert (await client.get("/things", headers=busy)).status_code == 200  # reads are not writes
        assert (await client.post("/things", headers=other)).status_code == 201


async def test_limits_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_of(edge_app(monkeypatch, RATE_LIMIT_WRITES="off", RATE_LIMIT_FAILED_SIGNINS="off")) as client:
        assert {(await client.post("/things", headers=bearer("coordinator"))).status_code for _ in range(50)} == {201}


def test_a_rate_setting_must_be_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_WRITES", "lots")
    with pytest.raises(ValueError, match=r"RATE_LIMIT_WRITES|rate_limit_writes"):
        EdgeSettings()
    monkeypatch.setenv("RATE_LIMIT_WRITES", "off")
    monkeypatch.setenv("IDEMPOTENCY_KEEP_HOURS", "12")
    with pytest.raises(ValueError, match="greater than or equal to 24"):
        EdgeSettings()


