"""Read models kept from events: one row per stream, for however many streams and events come at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncpg

from eventkit.db import Conn
from eventkit.events import RecordedEvent

K = TypeVar("K")
# A read model's rows changed by a batch of events: each row's key, the row as it was (None: a row to create) and the
# events not applied to it yet, in stream order.
RowChanges = Sequence[tuple[K, asyncpg.Record | None, list[RecordedEvent]]]


async def apply_to_rows(conn: Conn, streams: Mapping[K, list[RecordedEvent]], *,
                        read: Callable[[Conn, list[K]], Awaitable[Sequence[asyncpg.Record]]],
                        key: Callable[[asyncpg.Record], K],
                        write: Callable[[Conn, RowChanges[K], bool], Awaitable[set[K]]]) -> None:
    """Keeps a read model of one row per stream (with a `version` column: the last version applied) for however many
    streams and events come at once (a consumer's batch, a rebuild's batch of the log) in a few statements instead of
    some per event: `write(conn, changes, only_if_new)` folds each row's new events onto it and writes all of them in
    one statement, returning the keys written (with `only_if_new`, a row that exists is left alone).

    Streams that begin in the batch are written without a read (their rows cannot exist unless their first events
    were applied before); the others are read together (`read`, which should lock them: `FOR UPDATE`, in key order)
    and get only the events of versions above their row's (rebuild and live apply are idempotent per version)."""
    new: RowChanges[K] = [(k, None, events) for k, events in streams.items() if events[0].version == 1]
    written = await write(conn, new, True) if new else set()
    others = [k for k in streams if k not in written]
    if not others:
        return
    rows = {key(row): row for row in await read(conn, others)}
    changes: list[tuple[K, asyncpg.Record | None, list[RecordedEvent]]] = []
    for k in others:
        row = rows.get(k)
        unseen = [event for event in streams[k] if row is None or event.version > row["version"]]
        if unseen:
            changes.append((k, row, unseen))
    if changes:
        await write(conn, changes, False)
