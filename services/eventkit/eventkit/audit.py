"""The access log: an append-only, hash-chained record of who read which case's personal data, who was refused
(403) and who listed cases in bulk.

Services call `record_access` in the request that reads personal data; auditors query it through
`GET /audit/access-log` and check its integrity with `GET /audit/access-log/verify`. No API changes it, and the
service's database role may only read and append to it (eventkit.db_roles). Each entry's hash is an HMAC-SHA256,
keyed with the service's secret `<SERVICE>_ACCESS_LOG_KEY`, over the entry and the previous entry's hash: a row
changed by someone without the key breaks the chain. Rows removed from the end leave an intact chain, so after every
entry the head (its id and hash, with a MAC) is anchored outside the database: written to the log stream, and to
the file `<SERVICE>_ACCESS_LOG_ANCHOR` names. Verification compares the chain with the anchored head, and with a head
an auditor took from the log archive (`?head_id=&head_hash=`).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from eventkit import db
from eventkit.auth import allow
from eventkit.db import Conn
from eventkit.events import Actor

GENESIS = "0" * 64
_CHAIN_LOCK = 0x5EC0_0003
# Entries with no single case: a refusal of a route without one, a bulk listing.
NO_CASE = "*"
# Where eventkit.auth notes, in `request.state`, the caller it refused for want of a role.
REFUSED_ACTOR = "refused_actor"

log = logging.getLogger(__name__)
router = APIRouter(tags=["audit"])


def _material(prev_hash: str, at: datetime, actor_id: str, actor_role: str, case_id: str, action: str) -> bytes:
    return "\x1f".join([prev_hash, at.isoformat(), actor_id, actor_role, case_id, action]).encode()


def _unkeyed_digest(material: bytes) -> str:
    """Entries written before the chain was keyed."""
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True)
class Head:
    """The newest entry as anchored: its id and hash, and a MAC over both (a forged anchor file is noticed)."""

    id: int
    hash: str
    mac: str = ""


class AccessLog:
    """One service's access log: its key, and where its head is anchored."""

    def __init__(self, key: bytes, anchor_path: str = "", service: str = "") -> None:
        self.key = key
        self.anchor_path = Path(anchor_path) if anchor_path else None
        self.service = service

    def digest(self, material: bytes) -> str:
        return hmac.new(self.key, material, hashlib.sha256).hexdigest()

    def head(self, entry_id: int, entry_hash: str) -> Head:
        return Head(entry_id, entry_hash, self.digest(f"head\x1f{entry_id}\x1f{entry_hash}".encode()))

    async def record(self, conn: Conn, actor: Actor, case_id: object, action: str) -> None:
        async with conn.transaction():
            # One writer at a time extends the chain (reads of personal data are rare next to everything else).
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
            prev_hash = await conn.fetchval("SELECT hash FROM access_log ORDER BY id DESC LIMIT 1") or GENESIS
            at: datetime = await conn.fetchval("SELECT date_trunc('milliseconds', clock_timestamp())")
            digest = self.digest(_material(prev_hash, at, actor.id, actor.role, str(case_id), action))
            entry_id: int = await conn.fetchval(
                "INSERT INTO access_log (at, actor_id, actor_role, case_id, action, prev_hash, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                at, actor.id, actor.role, str(case_id), action, prev_hash, digest)
        head = self.head(entry_id, digest)
        if not conn.is_in_transaction():
            await self.anchor(head)
        elif not db.after_commit(conn, lambda: _in_background(self.anchor(head))):
            log.warning("access log entry %d written inside a transaction: anchored with the next one", entry_id)

    async def anchor(self, head: Head) -> None:
        """The head, outside the database: the log stream always, the anchor file if configured (only ever
        forward: replicas sharing the file may finish in any order)."""
        log.info("access log head %d %s", head.id, head.hash,
                 extra={"service": self.service, "access_log_head": asdict(head)})
        if self.anchor_path is not None:
            await asyncio.to_thread(_write_forward, self.anchor_path, head)

    def anchored(self) -> Head | None:
        if self.anchor_path is None or not self.anchor_path.exists():
            return None
        return Head(**json.loads(self.anchor_path.read_text()))

    async def verify(self, conn: Conn, archived: Head | None = None) -> dict[str, Any]:
        """The chain from the first entry (each hash, each link; plain hashes only for the entries written before the
        chain was keyed), then the anchored head and an archived one: each must still be in the chain, with its
        hash."""
        heads = {name: head for name, head in (("anchor", self.anchored()), ("archived", archived)) if head}
        found: dict[str, bool] = dict.fromkeys(heads, False)
        prev_hash = GENESIS
        checked = 0
        result: dict[str, Any] = {"intact": True, "checked": 0, "broken_at_id": None}
        async with conn.transaction():
            unkeyed_until = await conn.fetchval("SELECT last_id FROM access_log_unkeyed")
            async for row in conn.cursor("SELECT * FROM access_log ORDER BY id"):
                material = _material(prev_hash, row["at"], row["actor_id"], row["actor_role"], row["case_id"],
                                     row["action"])
                expected = _unkeyed_digest(material) if row["id"] <= unkeyed_until else self.digest(material)
                if row["prev_hash"] != prev_hash or row["hash"] != expected:
                    result.update(intact=False, broken_at_id=row["id"])
                    break
                for name, head in heads.items():
                    if head.id == row["id"]:
                        found[name] = head.hash == row["hash"]
                prev_hash = row["hash"]
                checked += 1
        result["checked"] = checked
        result["head_id"] = None if checked == 0 else await conn.fetchval("SELECT max(id) FROM access_log")
        for name, head in heads.items():
            genuine = name == "archived" or hmac.compare_digest(head.mac, self.head(head.id, head.hash).mac)
            result[f"{name}_head_id"] = head.id
            result[f"{name}_head_matches"] = genuine and found[name]
            if not result[f"{name}_head_matches"]:
                result["intact"] = False
        return result


def _write_forward(path: Path, head: Head) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and json.loads(path.read_text())["id"] >= head.id:
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(head)))
        os.replace(temporary, path)


_background: set[asyncio.Task[None]] = set()


def _in_background(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


# The access log of the service whose request is being handled (set by `AccessLogContext`).
_current: ContextVar[AccessLog | None] = ContextVar("eventkit_access_log", default=None)


async def record_access(conn: Conn, actor: Actor, case_id: object, action: str) -> None:
    """An entry in the access log of the service handling the current request."""
    access_log = _current.get()
    if access_log is None:
        raise RuntimeError("record_access outside a service's request: no access log to write to")
    await access_log.record(conn, actor, case_id, action)


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class AccessLogContext:
    """ASGI middleware: requests know their service's access log, and every refusal (403) of a caller with a valid
    token is written to it, with the route's case if it names one."""

    def __init__(self, app: ASGIApp, access_log: AccessLog, pool: Callable[[], Any]) -> None:
        self.app = app
        self.access_log = access_log
        self.pool = pool

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(self.access_log)
        state = scope.setdefault("state", {})  # what `request.state` holds; the route's authorization notes in it
        status: list[int] = []

        async def noting_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            _current.reset(token)
        refused = state.get(REFUSED_ACTOR)
        if status == [403] and isinstance(refused, Actor):
            await self._record_refusal(scope, refused)

    async def _record_refusal(self, scope: MutableMapping[str, Any], refused: Actor) -> None:
        route = scope.get("route")
        path = getattr(route, "path", scope.get("path", ""))
        case_id = scope.get("path_params", {}).get("case_id", NO_CASE)
        try:
            async with self.pool().acquire() as conn:
                await self.access_log.record(conn, refused, case_id, f"refused {scope['method']} {path}")
        except Exception as error:  # the refusal was answered; a lost entry is logged, not raised
            log.error("could not write a refusal to the access log: %s", error.__class__.__name__)


def listing(action: str, *roles: str) -> Callable[..., Awaitable[Actor]]:
    """The authorization of a route that lists cases in bulk (`allow(*roles)`), writing each listing to the access log
    with what was asked for (the query string: filters and page, never personal data)."""
    authorized = allow(*roles)

    # A default, not an `Annotated` hint: the hint would be a string naming a local FastAPI cannot resolve.
    async def listed(request: Request, actor: Actor = Depends(authorized)) -> Actor:  # noqa: B008
        query = request.url.query
        async with request.app.state.runtime.pool.acquire() as conn:
            await record_access(conn, actor, NO_CASE, f"{action}?{query}" if query else action)
        return actor

    return listed


@router.get("/audit/access-log")
async def access_log(request: Request, actor: Annotated[Actor, Depends(allow("auditor"))],
                     case_id: Annotated[str | None, Query(max_length=64)] = None,
                     since: datetime | None = None, until: datetime | None = None,
                     before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description=(
                         "only entries older than this one (its `id`): the next page after the last entry shown"))
                     ] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """The access log, newest first, narrowed by case and time; paged by `before_id`."""
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, at, actor_id, actor_role, case_id, action, hash FROM access_log
               WHERE ($1::text IS NULL OR case_id = $1) AND ($2::timestamptz IS NULL OR at >= $2)
                 AND ($3::timestamptz IS NULL OR at < $3) AND ($5::bigint IS NULL OR id < $5)
               ORDER BY id DESC LIMIT $4""", case_id, since, until, limit, before_id)
        query = request.url.query
        await record_access(conn, actor, NO_CASE, f"list_access_log?{query}" if query else "list_access_log")
    return {"entries": [dict(row) for row in rows]}


@router.get("/audit/access-log/verify")
async def verify(request: Request, _: Annotated[Actor, Depends(allow("auditor"))],
                 head_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                 head_hash: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None) -> dict[str, Any]:
    """The chain's integrity; `head_id` and `head_hash` (both or neither): a head the log stream recorded, which
    must still be in the chain."""
    archived = Head(head_id, head_hash) if head_id is not None and head_hash is not None else None
    access: AccessLog = request.app.state.runtime.access_log
    async with request.app.state.runtime.pool.acquire() as conn:
        return await access.verify(conn, archived)

