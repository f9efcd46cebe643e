"""The catch-up feed: `GET /events?after=<position>&limit=<n>`, a service's published events as a paged
CloudEvents batch, for a subscriber that joined late or lost messages.

It serves the outbox (the bodies exactly as they were published, or are about to be) in the order of the
transactions that wrote them. Positions are `<txid>.<id>`: the writing transaction's id, then the outbox row's.
Rows of transactions still running are invisible, and such a transaction may hold a lower row id than rows
already committed (docs/reliability.md), so paging by row id alone could skip it. The feed therefore serves only
rows below the oldest transaction of this database still running: every transaction below it has finished, and
every one that has not will write above it, so a page once served never gains an event behind it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from eventkit.auth import allow
from eventkit.events import Actor

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
START = "0.0"
POSITION_PATTERN = r"^(0|[0-9]+\.[0-9]+)$"

router = APIRouter(tags=["integration"])

# The oldest transaction of this database still running (another database's, told by pg_stat_activity, cannot
# write here; a transaction not known to be another's counts), or else the first transaction id not yet given.
_PAGE = """
    WITH snapshot AS (SELECT pg_current_snapshot() AS s),
    horizon AS (
        SELECT least(pg_snapshot_xmax(s), (
            SELECT min(running) FROM pg_snapshot_xip(s) AS running
            WHERE (running::text::bigint % 4294967296)::text NOT IN (
                SELECT backend_xid::text FROM pg_stat_activity
                WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()))) AS below
        FROM snapshot)
    SELECT txid::text AS txid, id, body FROM outbox, horizon
    WHERE (txid, id) > ($1::text::xid8, $2::bigint) AND txid < horizon.below
    ORDER BY txid, id
    LIMIT $3"""


def parse_position(position: str) -> tuple[str, int]:
    txid, _, row = (START if position == "0" else position).partition(".")
    return txid, int(row)


@router.get("/events", response_class=Response, responses={200: {
    "content": {BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}}},
    "description": "The next events as a CloudEvents batch (empty when there are none yet); the `Next-Position` "
                   "header is the `after` to ask for next."}})
async def events(request: Request, _: Annotated[Actor, Depends(allow("integration"))],
                 after: Annotated[str, Query(pattern=POSITION_PATTERN, max_length=41, description=(
                     "The `Next-Position` of the previous page; `0` for the first."))] = "0",
                 limit: Annotated[int, Query(ge=1, le=1000, description="At most this many events.")] = 100,
                 ) -> Response:
    """This service's published events after `after`, oldest first, exactly as they were published."""
    txid, row = parse_position(after)
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await conn.fetch(_PAGE, txid, row, limit)
    next_position = f"{rows[-1]['txid']}.{rows[-1]['id']}" if rows else after
    body = b"[" + b",".join(bytes(r["body"]) for r in rows) + b"]"
    return Response(body, media_type=BATCH_CONTENT_TYPE, headers={
        "Next-Position": next_position,
        "Link": f'<{request.url.path}?after={next_position}&limit={limit}>; rel="next"'})



