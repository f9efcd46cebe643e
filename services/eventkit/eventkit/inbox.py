"""The inbox: the ids of the events a service has consumed, recorded in the transaction of their effect, so that a
redelivered event (the broker delivers at least once) finds its id there and has no second effect."""

from __future__ import annotations

from collections.abc import Sequence

from eventkit.db import Conn

_RECORD = """
    INSERT INTO inbox (message_id, event_type) SELECT * FROM unnest($1::text[], $2::text[])
    ON CONFLICT DO NOTHING RETURNING message_id"""


async def record_in_inbox(conn: Conn, deliveries: Sequence[tuple[str, str]]) -> set[str]:
    """Records each (message id, event type) in `conn`'s transaction; returns the ids recorded now, for the first
    time (the others were consumed before)."""
    rows = await conn.fetch(_RECORD, [message_id for message_id, _ in deliveries],
                            [event_type for _, event_type in deliveries])
    return {row["message_id"] for row in rows}
