"""The access log: an append-only, hash-chained record of who read which case's personal data.

Services call `record_access` in the request that reads personal data; auditors query it through
`GET /audit/access-log` and check its integrity with `GET /audit/access-log/verify`. No API changes it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from eventkit.auth import allow
from eventkit.db import Conn
from eventkit.events import Actor

GENESIS = "0" * 64
_CHAIN_LOCK = 0x5EC0_0003

router = APIRouter(tags=["audit"])


def _digest(prev_hash: str, at: datetime, actor_id: str, actor_role: str, case_id: str, action: str) -> str:
    material = "\x1f".join([prev_hash, at.isoformat(), actor_id, actor_role, case_id, action])
    return hashlib.sha256(material.encode()).hexdigest()


async def record_access(conn: Conn, actor: Actor, case_id: object, action: str) -> None:
    async with conn.transaction():
        # One writer at a time extends the chain (reads of personal data are rare next to everything else).
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
        prev_hash = await conn.fetchval("SELECT hash FROM access_log ORDER BY id DESC LIMIT 1") or GENESIS
        at: datetime = await conn.fetchval("SELECT date_trunc('milliseconds', clock_timestamp())")
        digest = _digest(prev_hash, at, actor.id, actor.role, str(case_id), action)
        await conn.execute(
            "INSERT INTO access_log (at, actor_id, actor_role, case_id, action, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            at, actor.id, actor.role, str(case_id), action, prev_hash, digest)


async def verify_chain(conn: Conn) -> dict[str, Any]:
    prev_hash = GENESIS
    checked = 0
    async with conn.transaction():
        async for row in conn.cursor("SELECT * FROM access_log ORDER BY id"):
            expected = _digest(prev_hash, row["at"], row["actor_id"], row["actor_role"], row["case_id"], row["action"])
            if row["prev_hash"] != prev_hash or row["hash"] != expected:
                return {"intact": False, "checked": checked, "broken_at_id": row["id"]}
            prev_hash = row["hash"]
            checked += 1
    return {"intact": True, "checked": checked, "broken_at_id": None}


@router.get("/audit/access-log")
async def access_log(request: Request, _: Annotated[Actor, Depends(allow("auditor"))],
                     case_id: Annotated[str | None, Query(max_length=64)] = None,
                     since: datetime | None = None, until: datetime | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, at, actor_id, actor_role, case_id, action, hash FROM access_log
               WHERE ($1::text IS NULL OR case_id = $1) AND ($2::timestamptz IS NULL OR at >= $2)
                 AND ($3::timestamptz IS NULL OR at < $3)
               ORDER BY id DESC LIMIT $4""", case_id, since, until, limit)
    return {"entries": [dict(row) for row in rows]}


@router.get("/audit/access-log/verify")
async def verify(request: Request, _: Annotated[Actor, Depends(allow("auditor"))]) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn:
        return await verify_chain(conn)
