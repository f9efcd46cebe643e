"""Tokens verified with the identity provider's published keys (JWKS), fetched over HTTP from a real local server:
a key fetch never stalls other requests, and an unreachable provider is a retryable 503, not a bad token."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from eventkit.auth import DEV_AUDIENCE, DEV_ISSUER, DEV_PRIVATE_KEY, DEV_PUBLIC_KEY, AuthSettings, TokenVerifier, allow
from eventkit.events import Actor

KEY_ID = "desk-2026"


@dataclass
class IdentityProvider:
    """Serves a JWKS document; `hold` keeps every answer back until it is cleared (a slow provider)."""
    url: str = ""
    asked: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def identity_provider() -> Iterator[IdentityProvider]:
    public_key = serialization.load_pem_public_key(DEV_PUBLIC_KEY.read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    document = json.dumps({"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}).encode()
    provider = IdentityProvider()
    provider.released.set()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.asked.set()
            provider.released.wait(30)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield provider
    finally:
        provider.released.set()
        server.shutdown()
        server.server_close()


def desk_app(jwks_url: str) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(AuthSettings(JWT_JWKS_URL=jwks_url))

    @app.get("/me")
    async def me(actor: Annotated[Actor, Depends(allow("coordinator"))]) -> dict[str, str]:
        return {"id": actor.id, "role": actor.role}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def token(private_key_pem: str | bytes, key_id: str = KEY_ID) -> str:
    now = int(time.time())
    claims = {"sub": "coord-7", "roles": ["coordinator"], "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "iat": now,
              "exp": now + 600}
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": key_id})


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk")


async def test_a_token_signed_with_the_providers_published_key_is_accepted_and_another_key_is_not(
        identity_provider: IdentityProvider) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    async with client(desk_app(identity_provider.url)) as desk:
        accepted = await desk.get("/me", headers={"Authorization": f"Bearer {token(DEV_PRIVATE_KEY.read_text())}"})
        forged = await desk.get("/me", headers={"Authorization": f"Bearer {token(other)}"})
    assert accepted.status_code == 200
    assert accepted.json() == {"id": "coord-7", "role": "coordinator"}
    assert forged.status_code == 401


async def test_while_the_keys_are_fetched_other_requests_are_served(identity_provider: IdentityProvider) -> None:
    identity_provider.released.clear()  # the provider answers only when told to
    async with client(desk_app(identity_provider.url)) as desk:
        waiting_for_keys = asyncio.create_task(
            desk.get("/me", headers={"Authorization": f"Bearer {token(DEV_PRIVATE_KEY.read_text())}"}))
        while not identity_provider.asked.is_set():  # noqa: ASYNC110 (set by the server's thread)
            await asyncio.sleep(0.01)
        health = await desk.get("/healthz")
        assert health.status_code == 200
        assert not waiting_for_keys.done(), "the other request was served while the keys were still on their way"
        identity_provider.released.set()
        assert (await waiting_for_keys).status_code == 200


def url_nobody_listens_on() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


async def test_an_unreachable_identity_provider_is_a_retryable_503_not_a_bad_token() -> None:
    async with client(desk_app(url_nobody_listens_on())) as desk:
        answer = await desk.get("/me", headers={"Authorization": f"Bearer {token(DEV_PRIVATE_KEY.read_text())}"})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    assert "identity provider" in answer.json()["detail"]
