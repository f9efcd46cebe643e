"""`Idempotency-Key` on every POST, as the IETF httpapi draft "The Idempotency-Key HTTP Header Field" describes it.

A POST carrying the header is done once per key and signed-in subject: the same key with the same request answers
the first answer again (`Idempotent-Replayed: true`) without doing anything a second time; with another request it
is 422; while the first is still being answered it is 409. Keys and answers are kept at least 24 hours
(`idempotency_keys`, eventkit's migration 0006).

The ambiguous commit (the command's transaction committed, yet the answer was a 503 or never arrived) is covered
because the key is also written with the command's effects: every event a request appends carries the key's hash in
its metadata (`eventkit.http.command_context` reads it from `request_idempotency_key`), in the same transaction. A
request that ends in a 5xx, or a retry that finds its key still "in flight", looks for those events: if they are
there, the command was recorded, and the answer is that (200, `code` "recorded_before", the case and the events),
never a second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from typing import Any
from uuid import UUID

from fastapi.responses import JSONResponse

from eventkit import db
from eventkit.http import IDEMPOTENCY_METADATA_KEY, read_body, refusal, replay, request_idempotency_key, unavailable

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
# The draft's value is a Structured Field String ("..."); a bare token is accepted too. Printable ASCII only.
_KEY = re.compile(r'^"?([\x21\x23-\x7e]{1,255})"?$')
IN_FLIGHT_LEASE_SECONDS = 30.0  # a request still unanswered after this long is taken as dead (its process crashed)
PURGE_EVERY_SECONDS = 600.0
ABANDONED_REMEMBERED = 10_000

_RESERVE = """
    INSERT INTO idempotency_keys (request_key, fingerprint) VALUES ($1, $2)
    ON CONFLICT (request_key) DO NOTHING RETURNING request_key"""
_EXISTING = """
    SELECT fingerprint, status, headers, body, locked_at > now() - make_interval(secs => $2) AS live,
           created_at < now() - make_interval(hours => $3) AS expired, locked_at
    FROM idempotency_keys WHERE request_key = $1"""
_RESTART = """
    UPDATE idempotency_keys SET fingerprint = $2, locked_at = now(), created_at = now(), status = NULL, headers = NULL,
           body = NULL
    WHERE request_key = $1 AND locked_at = $3"""
_ANSWERED = "UPDATE idempotency_keys SET status = $2, headers = $3, body = $4 WHERE request_key = $1"
_RELEASE = "DELETE FROM idempotency_keys WHERE request_key = $1 AND status IS NULL"
_RECORDED = f"""
    SELECT event_type, metadata->>'correlation_id' AS correlation_id FROM events
    WHERE metadata->>'{IDEMPOTENCY_METADATA_KEY}' = $1 ORDER BY position"""
_PURGE = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)"

# Answers not kept: nothing was decided (a race lost, a limit hit, a server fault); the same key may try again.
_NOT_KEPT = {408, 409, 425, 429}


class Idempotency:
    """ASGI middleware: POSTs with an Idempotency-Key done at most once (see the module's docstring)."""

    def __init__(self, app: Any, keep_hours: int = 24) -> None:
        self.app = app
        self.keep_hours = keep_hours
        self._purged_at = 0.0
        # Keys this process is answering now, and keys whose request ended here without its answer written (the
        # database was gone): the one is in flight for sure, the other for sure not, whatever the lease says.
        self._running: set[str] = set()
        self._abandoned: dict[str, None] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        if scope["type"] != "http" or scope["method"] != "POST" or HEADER not in headers:
            await self.app(scope, receive, send)
            return
        match = _KEY.match(headers[HEADER].decode("latin-1"))
        if match is None:
            await refusal(400, "Idempotency-Key must be 1 to 255 printable ASCII characters, e.g. a UUID",
                           "invalid_idempotency_key")(scope, receive, send)
            return
        subject = await _verified_subject(scope, headers.get(b"authorization"))
        if subject is None:  # no valid token: the route refuses it, nothing to remember
            await self.app(scope, receive, send)
            return
        body, ended = await read_body(receive)
        if ended is not None:
            await self.app(scope, replay(body, ended), send)
            return
        request_key = hashlib.sha256(f"{subject}\0{match.group(1)}".encode()).hexdigest()
        fingerprint = hashlib.sha256(b"\0".join([scope["method"].encode(), scope["path"].encode(),
                                                 scope.get("query_string", b""), body])).hexdigest()
        pool = scope["app"].state.runtime.pool
        try:
            answer = await self._before(pool, request_key, fingerprint)
        except db.TRANSIENT_DB_ERRORS as error:
            log.warning("idempotency keys unavailable: %s", error.__class__.__name__)
            answer = unavailable()
        if answer is not None:
            await answer(scope, receive, send)
            return
        await self._run(scope, body, send, pool, request_key)
        self._purge_now_and_then(pool)

    async def _before(self, pool: Any, request_key: str, fingerprint: str) -> JSONResponse | None:
        """None when this request is to run now (its key reserved); else the answer to give instead."""
        async with pool.acquire() as conn:
            if await conn.fetchval(_RESERVE, request_key, fingerprint) is not None:
                return None
            row = await conn.fetchrow(_EXISTING, request_key, IN_FLIGHT_LEASE_SECONDS, self.keep_hours)
            if row is None:  # released meanwhile: try once more
                return None if await conn.fetchval(_RESERVE, request_key, fingerprint) else _in_flight()
            if row["expired"]:
                restarted = await conn.execute(_RESTART, request_key, fingerprint, row["locked_at"])
                return None if restarted.endswith(" 1") else _in_flight()
            if row["fingerprint"] != fingerprint:
                return refusal(422, "this Idempotency-Key was used for a different request; use a new key",
                                "idempotency_key_reused")
            if row["status"] is not None:
                return _replayed(row["status"], row["headers"], row["body"])
            if request_key in self._running or (row["live"] and request_key not in self._abandoned):
                return _in_flight()
            recovered = await _recorded_answer(conn, request_key)
            if recovered is not None:
                self._abandoned.pop(request_key, None)
                return recovered
            restarted = await conn.execute(_RESTART, request_key, fingerprint, row["locked_at"])
            return None if restarted.endswith(" 1") else _in_flight()

    async def _run(self, scope: dict[str, Any], body: bytes, send: Any, pool: Any, request_key: str) -> None:
        """The request itself, with its events tagged by the key; its answer kept (or the key released)."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def buffered(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        token = request_idempotency_key.set(request_key)
        self._running.add(request_key)
        try:
            await self.app(scope, replay(body), buffered)
        except BaseException:
            self._abandon(request_key)  # a retry looks for what it recorded, or runs it again
            raise
        finally:
            request_idempotency_key.reset(token)
            self._running.discard(request_key)
        status = start.get("status", 500)
        content = b"".join(chunks)
        try:
            async with pool.acquire() as conn:
                if status >= 500:
                    # The command may have committed although its answer is a fault (a connection lost at COMMIT).
                    recovered = await _recorded_answer(conn, request_key)
                    if recovered is not None:
                        log.info("a request answered %d had been recorded; answering what was recorded", status)
                        await recovered(scope, replay(b""), send)
                        return
                if status >= 500 or status in _NOT_KEPT:
                    await conn.execute(_RELEASE, request_key)
                else:
                    kept = {name.decode("latin-1"): value.decode("latin-1") for name, value in start.get("headers", [])
                            if name.lower() in (b"content-type", b"location")}
                    await conn.execute(_ANSWERED, request_key, status, json.dumps(kept), content)
        except db.TRANSIENT_DB_ERRORS as error:
            # The key stays "in flight": a retry finds the command's events (if it committed) or runs it again (at
            # once here; on another replica once the lease is over).
            log.warning("could not record the answer of an idempotent request: %s", error.__class__.__name__)
            self._abandon(request_key)
        await send(start)
        await send({"type": "http.response.body", "body": content})

    def _abandon(self, request_key: str) -> None:
        self._abandoned[request_key] = None
        while len(self._abandoned) > ABANDONED_REMEMBERED:
            del self._abandoned[next(iter(self._abandoned))]

    def _purge_now_and_then(self, pool: Any) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()

        async def purge() -> None:
            try:
                await pool.execute(_PURGE, self.keep_hours)
            except Exception as error:  # the next request tries again later
                log.info("could not purge old idempotency keys: %s", error.__class__.__name__)

        asyncio.get_running_loop().create_task(purge())


def _in_flight() -> JSONResponse:
    return refusal(409, "a request with this Idempotency-Key is still being answered; retry shortly",
                    "idempotency_key_in_flight", {"Retry-After": "1"})


def _replayed(status: int, headers: str | dict[str, str], body: bytes) -> JSONResponse:
    kept = json.loads(headers) if isinstance(headers, str) else dict(headers)
    response = JSONResponse(None, status_code=status, headers={**kept, "Idempotent-Replayed": "true"})
    response.body = body
    response.headers["content-length"] = str(len(body))
    return response


async def _recorded_answer(conn: Any, request_key: str) -> JSONResponse | None:
    """What a request that committed but was never answered gets: what it recorded (and that answer is kept)."""
    rows = await conn.fetch(_RECORDED, request_key)
    if not rows:
        return None
    correlation_id = rows[0]["correlation_id"]
    answer: dict[str, Any] = {"detail": "this request was carried out before; its first answer was lost",
                              "code": "recorded_before", "correlation_id": correlation_id,
                              "events": [row["event_type"] for row in rows]}
    with contextlib.suppress(TypeError, ValueError):
        answer["case_id"] = str(UUID(correlation_id))
    content = json.dumps(answer).encode()
    await conn.execute(_ANSWERED, request_key, 200, json.dumps({"content-type": "application/json"}), content)
    return _replayed(200, {"content-type": "application/json"}, content)


async def _verified_subject(scope: dict[str, Any], authorization: bytes | None) -> str | None:
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims = await scope["app"].state.token_verifier.verify_in_background(token.strip())
    except Exception:  # any refusal: the route's `allow` answers it
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None
