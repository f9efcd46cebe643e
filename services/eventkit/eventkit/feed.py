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
        SELECT pg_snapshot_xmax(s) AS head, least(pg_snapshot_xmax(s), (
            SELECT min(running) FROM pg_snapshot_xip(s) AS running
            WHERE (running::text::bigint % 4294967296)::text NOT IN (
                SELECT backend_xid::text FROM pg_stat_activity
                WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()))) AS below
        FROM snapshot),
    page AS (
        SELECT txid, id, body FROM outbox, horizon
        WHERE (txid, id) > ($1::text::xid8, $2::bigint) AND txid < horizon.below
        ORDER BY txid, id
        LIMIT $3)
    SELECT horizon.head::text AS head, horizon.below::text AS below, page.txid::text AS txid, page.id, page.body
    FROM horizon LEFT JOIN page ON true
    ORDER BY page.txid, page.id"""


def parse_position(position: str) -> tuple[str, int]:
    txid, _, row = (START if position == "0" else position).partition(".")
    return txid, int(row)


@router.get("/events", response_class=Response, responses={200: {
    "content": {BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}}},
    "description": "The next events as a CloudEvents batch (empty when there are none yet); the `Next-Position` "
                   "header is the `after` to ask for next, `Head-Position` and `Complete-Before` say when a "
                   "subscriber has caught up (docs/subscribing.md)."}})
async def events(request: Request, _: Annotated[Actor, Depends(allow("integration"))],
                 after: Annotated[str, Query(pattern=POSITION_PATTERN, max_length=41, description=(
                     "The `Next-Position` of the previous page; `0` for the first."))] = "0",
                 limit: Annotated[int, Query(ge=1, le=1000, description="At most this many events.")] = 100,
                 ) -> Response:
    """This service's published events after `after`, oldest first, exactly as they were published."""
    txid, row = parse_position(after)
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await conn.fetch(_PAGE, txid, row, limit)
    served = [r for r in rows if r["id"] is not None]
    next_position = f"{served[-1]['txid']}.{served[-1]['id']}" if served else after
    body = b"[" + b",".join(bytes(r["body"]) for r in served) + b"]"
    return Response(body, media_type=BATCH_CONTENT_TYPE, headers={
        "Next-Position": next_position,
        # Every event committed before this request lies before Head-Position; every event before Complete-Before
        # is in the feed already. A subscriber that reads on until a page is not full and its Complete-Before has
        # reached the Head-Position of a request made after it bound its queue has missed nothing published before.
        "Head-Position": f"{rows[0]['head']}.0",
        "Complete-Before": f"{rows[0]['below']}.0",
        "Link": f'<{request.url.path}?after={next_position}&limit={limit}>; rel="next"'})



