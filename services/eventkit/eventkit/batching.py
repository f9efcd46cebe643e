"""Batching: the same store and consumer, with fewer round trips per event. What they do is unchanged; only how many
statements and transactions it takes. The runtime runs these; no service names them.

Earlier sessions measured each of these against the code before it (docs/BENCHMARKS.md): most of what an event
costs is round trips to PostgreSQL, and each of these cuts them.

- Group commit (`GroupCommitter`): work handed in by concurrent tasks is committed in batches, one transaction for a
  batch, each task awaiting its own result. A lone piece of work goes at once: nothing waits for a batch to fill.
  While a batch commits, the work that arrives meanwhile gathers for the next one; `concurrent_batches` (two)
  committers run at a time, so that one batch is built while the other commits.
- `BatchingEventStore`: appends made outside a caller's transaction (most commands') are group-committed, written
  together in one statement. Within `appends_written_together` (a consumer's batch) the appends made in the batch's
  transaction wait and are written together when the block ends; streams the batch will load are read at its start
  in one statement.
- `BatchingConsumer`: the deliveries in hand together are handled in one transaction (one BEGIN, one inbox
  statement, one COMMIT for all), inside the store's `appends_written_together`. Handlers that say which streams
  they load (`LoadsStreams`), or reactions whose loads it has seen (it learns which command field names the
  aggregate each command loads), get those streams read ahead. If anything in a batch fails, it is rolled back
  and each delivery is handled again on its own, so a bad one never takes good ones with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from opentelemetry import context as otel_context

from eventkit import db, metrics
from eventkit.aggregate import AggregateType
from eventkit.consumer import CommandReaction, Consumer, Delivery, Handler, JoinedReaction, Outcome, _short, _traced
from eventkit.db import Conn
from eventkit.events import RecordedEvent
from eventkit.store import (
    LOAD_STREAM,
    LOAD_STREAMS,
    STREAM_VERSION,
    AppendRequest,
    ConcurrencyError,
    EventStore,
    EventTypes,
    LocalRelay,
    PreparedAppend,
    Projection,
)
from eventkit.unit_of_work import PostgresUnitOfWork

log = logging.getLogger(__name__)

W = TypeVar("W")
R = TypeVar("R")
T = TypeVar("T")


# --- group commit ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pending(Generic[W, R]):
    """A piece of work waiting for a committer, with the trace it was handed in under and where its result goes."""

    work: W
    trace_context: otel_context.Context
    result: asyncio.Future[R]

    def resolve(self, result: R) -> None:
        if not self.result.done():  # the task that handed it in may have been cancelled meanwhile
            self.result.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)


class GroupCommitter(Generic[W, R]):
    def __init__(self, commit_batch: Callable[[list[Pending[W, R]]], Awaitable[None]], *, batch_max: int,
                 concurrent_batches: int = 2, key: Callable[[W], Hashable] | None = None) -> None:
        """`key`, when given, keeps two pieces of work with the same key apart: never in one batch, nor in two
        batches committing at once; the later waits until the earlier's batch has committed, so they commit in the
        order handed in (for work that would conflict with its twin inside one statement or race it in two)."""
        self.commit_batch = commit_batch
        self.batch_max = batch_max
        self.concurrent_batches = concurrent_batches
        self.key = key
        self._waiting: list[Pending[W, R]] = []
        self._committers: set[asyncio.Task[None]] = set()
        self._committing_keys: set[Hashable] = set()

    async def run(self, work: W) -> R:
        """Hand `work` to a committer and wait for its result; start a committer if fewer than
        `concurrent_batches` are at work."""
        loop = asyncio.get_running_loop()
        pending: Pending[W, R] = Pending(work, otel_context.get_current(), loop.create_future())
        self._waiting.append(pending)
        if len(self._committers) < self.concurrent_batches:
            # Its own context: the committer outlives this task and commits others' work, each under its own trace.
            self._committers.add(loop.create_task(self._commit_waiting(), context=contextvars.Context()))
        return await pending.result

    def _next_batch(self) -> list[Pending[W, R]]:
        batch: list[Pending[W, R]] = []
        keys: set[Hashable] = set(self._committing_keys)
        later: list[Pending[W, R]] = []
        for index, pending in enumerate(self._waiting):
            if len(batch) == self.batch_max:
                later += self._waiting[index:]
                break
            if pending.result.done():  # given up (cancelled) before it was taken: nothing to do
                continue
            if self.key is not None:
                key = self.key(pending.work)
                if key in keys:
                    later.append(pending)
                    continue
                keys.add(key)
            batch.append(pending)
        self._waiting = later
        return batch

    async def _commit_waiting(self) -> None:
        batch: list[Pending[W, R]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                if not batch:
                    break  # what is left waits for keys another committer has in hand: that one takes it after
                batch_keys = {self.key(pending.work) for pending in batch} if self.key is not None else set()
                self._committing_keys |= batch_keys
                try:
                    await self.commit_batch(batch)
                finally:
                    self._committing_keys -= batch_keys
        except BaseException as error:  # cancelled (the process is stopping): nothing of the batch is reported done
            for pending in (*batch, *(self._waiting if len(self._committers) <= 1 else ())):
                pending.fail(error)
            raise
        finally:
            # Leaves the set in the same step that found nothing waiting. (A done callback would run a step later:
            # work handed in between would find this committer still counted, start none, and wait forever.)
            self._committers.discard(asyncio.current_task())


# --- the event store's appends written together ----------------------------------------------------------------------

@dataclass
class _Block:
    """One connection's `appends_written_together` block: the appends waiting, each with the list its caller got, and
    the streams loaded ahead (rows by stream id; a stream appended to since is dropped)."""

    waiting: list[tuple[PreparedAppend, list[RecordedEvent]]] = field(default_factory=list)
    loaded_ahead: dict[str, list[asyncpg.Record]] = field(default_factory=dict)


class BatchingEventStore(EventStore):
    """The event store, writing concurrent commands' appends together (at most `append_batch_max` in one statement
    and transaction; 1 writes each alone). An append that fails in a batch (its stream's version guard) fails alone;
    if the batch fails as a whole (a projection's error, a collision with another replica), each of its appends is
    written again on its own, so one never takes the others with it."""

    def __init__(self, pool: asyncpg.Pool, *, service: str, types: EventTypes,
                 projections: Sequence[Projection] = (), relay: LocalRelay | None = None,
                 append_batch_max: int = 32) -> None:
        super().__init__(pool, service=service, types=types, projections=projections, relay=relay)
        self.append_batch_max = append_batch_max
        self._appends: GroupCommitter[AppendRequest, list[RecordedEvent]] = GroupCommitter(
            self._commit_appends, batch_max=append_batch_max, key=lambda append: append.stream_id)
        self._blocks: dict[Conn, _Block] = {}  # the connections inside `appends_written_together`

    async def _submit(self, append: AppendRequest, conn: Conn | None) -> list[RecordedEvent]:
        if conn is None and self.append_batch_max > 1:
            return await self._appends.run(append)
        if conn is not None and conn in self._blocks:
            return await self._append_later(conn, append)
        return await self._append_alone(append, conn)

    @asynccontextmanager
    async def appends_written_together(self, conn: Conn, load_ahead: Sequence[str] = ()) -> AsyncIterator[None]:
        """Within the block, appends made on `conn` (in the transaction it has open) wait and are written when the
        block ends, all in one statement, then their projections: a consumer's batch of deliveries makes one write
        for all of its handlers instead of two round trips (events, projections) for each. A load of, or another
        append to, a stream with an append waiting writes what waits first, so a handler reads its own and earlier
        handlers' appends through the store as before. The lists `append` returns get their positions when written;
        a refused append raises `ConcurrencyError` from the write (the caller's whole transaction is retried, as
        it is for an append made at once). Projection tables are written only then: code in the block that reads
        them does not see the block's appends yet.

        `load_ahead`: streams the block's handlers will load, read at the start in one statement instead of one
        each; a load of one of them in the block is answered from what was read (unless the block appended to it
        since). A writer elsewhere appending to such a stream meanwhile is not seen: the block's append to it then
        fails its version guard, as it would had that writer come a moment later, and the caller retries."""
        block = self._blocks[conn] = _Block()
        try:
            if load_ahead:
                block.loaded_ahead = await self._load_many(conn, load_ahead)
            yield
            await self._write_waiting(conn)
        finally:
            del self._blocks[conn]

    async def _load_many(self, conn: Conn, stream_ids: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
        loaded: dict[str, list[asyncpg.Record]] = {stream_id: [] for stream_id in stream_ids}
        for row in await conn.fetch(LOAD_STREAMS, list(loaded)):
            loaded[row["stream_id"]].append(row)
        return loaded

    async def _append_later(self, conn: Conn, append: AppendRequest) -> list[RecordedEvent]:
        if self._has_waiting(conn, append.stream_id):
            # One statement checks every stream's version before it writes: a second append to a stream has to
            # come after the first is written.
            await self._write_waiting(conn)
        block = self._blocks[conn]
        block.loaded_ahead.pop(append.stream_id, None)
        prepared = self._prepare(append, datetime.now(UTC))
        handed_out = list(prepared.recorded)
        block.waiting.append((prepared, handed_out))
        return handed_out

    def _has_waiting(self, conn: Conn, stream_id: str) -> bool:
        block = self._blocks.get(conn)
        return block is not None and any(prepared.stream_id == stream_id for prepared, _ in block.waiting)

    async def _write_waiting(self, conn: Conn) -> None:
        waiting = self._blocks[conn].waiting
        if not waiting:
            return
        batch = list(waiting)
        waiting.clear()
        try:
            written = await self._write_prepared(conn, [prepared for prepared, _ in batch])
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "events_stream_version_unique":
                # The key in the error's detail names the stream.
                collided = next((p for p, _ in batch if p.stream_id in (error.detail or "")), batch[0][0])
                raise ConcurrencyError(collided.stream_id, collided.expected_version) from None
            raise
        for (prepared, handed_out), recorded in zip(batch, written, strict=True):
            if recorded is None:
                actual = await conn.fetchval(STREAM_VERSION, prepared.stream_id)
                raise ConcurrencyError(prepared.stream_id, prepared.expected_version, actual)
            handed_out[:] = recorded

    async def _commit_appends(self, batch: list[Pending[AppendRequest, list[RecordedEvent]]]) -> None:
        metrics.APPEND_BATCH_SIZE.labels(self.service).observe(len(batch))
        if len(batch) > 1:
            # Streams in one order, so that two replicas' batches take the index entries' locks alike.
            batch.sort(key=lambda pending: pending.work.stream_id)
            try:
                results = await self._write_committed([pending.work for pending in batch])
            except Exception as error:
                if db.is_database_lost(error):
                    for pending in batch:
                        pending.fail(error)
                    return
                log.info("a batch of %d appends failed (%s); writing each on its own", len(batch),
                         error.__class__.__name__)
                metrics.APPEND_BATCH_FALLBACKS.labels(self.service).inc()
            else:
                for pending, recorded in zip(batch, results, strict=True):
                    if recorded is None:
                        append = pending.work
                        actual = await self._stream_version_if_known(append.stream_id)
                        pending.fail(ConcurrencyError(append.stream_id, append.expected_version, actual))
                    else:
                        pending.resolve(recorded)
                return
        for pending in batch:
            try:
                pending.resolve(await self._append_alone(pending.work))
            except Exception as error:
                pending.fail(error)

    async def load(self, stream_id: str, *, conn: Conn | None = None) -> list[RecordedEvent]:
        if conn is None or conn not in self._blocks:
            return await super().load(stream_id, conn=conn)
        if self._has_waiting(conn, stream_id):
            await self._write_waiting(conn)
        loaded_ahead = self._blocks[conn].loaded_ahead.get(stream_id)
        rows = loaded_ahead if loaded_ahead is not None else await conn.fetch(LOAD_STREAM, stream_id)
        return [self._recorded(row) for row in rows]


# --- the consumer's deliveries handled together ----------------------------------------------------------------------

# Wraps the handling of a batch of deliveries in its transaction (the event store's `appends_written_together`),
# given the streams the batch's handlers will load.
BatchScope = Callable[[Conn, Sequence[str]], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class LoadsStreams:
    """A handler with the event streams it loads for a delivery. A batch of deliveries reads all of its handlers'
    streams in one statement before they run (the batch scope's `load_ahead`) instead of one each; a stream named
    here that the handler does not load costs a row read, one it loads and is not named here a statement."""

    handler: Handler
    streams: Callable[[Delivery], Sequence[str]]

    async def __call__(self, conn: Conn, delivery: Delivery) -> None:
        await self.handler(conn, delivery)


@dataclass(frozen=True)
class HandledTogether(Generic[T]):
    """A handler in two steps: `first` for all of a batch's deliveries at once, before any of them goes on, then
    `then` for each, with what `first` returned for it. A step every delivery begins with (reporting logs each event)
    is then one statement for the batch instead of one for each. Handled alone, a delivery is a batch of one."""

    first: Callable[[Conn, Sequence[Delivery]], Awaitable[Sequence[T]]]
    then: Callable[[Conn, Delivery, T], Awaitable[None]]

    async def __call__(self, conn: Conn, delivery: Delivery) -> None:
        [result] = await self.first(conn, [delivery])
        await self.then(conn, delivery, result)


class BatchingConsumer(Consumer):
    """The consumer, handling the deliveries in hand together (up to `batch_max`) in one transaction, within
    `batch_scope` (the runtime gives the event store's `appends_written_together`)."""

    def __init__(self, *args: Any, batch_max: int = 32, concurrent_batches: int = 2,
                 batch_scope: BatchScope | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_max = batch_max
        self.batch_scope = batch_scope
        self._batches: GroupCommitter[tuple[Handler, Delivery], Outcome] = GroupCommitter(
            self._commit_batch, batch_max=batch_max, concurrent_batches=concurrent_batches)
        self._learned = LearnedStreams()
        self.handlers = {name: self._learning(handler) for name, handler in self.handlers.items()}
        self.catch_all = self._learning(self.catch_all) if self.catch_all is not None else None

    async def _handle(self, handler: Handler, delivery: Delivery) -> Outcome:
        if self.batch_max == 1:
            return await self._handle_once(handler, delivery)
        return await self._batches.run((handler, delivery))

    async def _commit_batch(self, batch: list[Pending[tuple[Handler, Delivery], Outcome]]) -> None:
        metrics.CONSUMER_BATCH_SIZE.labels(self.service).observe(len(batch))
        if len(batch) > 1:
            try:
                outcomes = await self._handle_together(batch)
            except Exception as error:
                if db.is_database_lost(error):
                    for pending in batch:
                        pending.fail(error)
                    return
                log.info("a batch of %d deliveries failed (%s); handling each on its own", len(batch), _short(error))
                metrics.CONSUMER_BATCH_FALLBACKS.labels(self.service).inc()
            else:
                for pending, outcome in zip(batch, outcomes, strict=True):
                    pending.resolve(outcome)
                return
        for pending in batch:
            try:
                pending.resolve(await self._handle_once(*pending.work, pending.trace_context))
            except Exception as error:
                pending.fail(error)

    async def _handle_together(self, batch: list[Pending[tuple[Handler, Delivery], Outcome]]) -> list[Outcome]:
        """All of `batch` in one transaction, in the order of their cases (at most one delivery per case is in
        hand: the case lock), so that replicas' batches take the cases' locks in one order."""
        batch.sort(key=lambda pending: pending.work[1].envelope.subject)
        async with db.transaction(self.pool) as conn:
            work = [(*pending.work, pending.trace_context) for pending in batch]
            if self.batch_scope is None:
                return await self._handle_in(conn, work)
            load_ahead = [stream for handler, delivery, _ in work for stream in self._streams_ahead(handler, delivery)]
            async with self.batch_scope(conn, load_ahead):
                return await self._handle_in(conn, work)

    def _streams_ahead(self, handler: Handler, delivery: Delivery) -> Sequence[str]:
        if isinstance(handler, LoadsStreams):
            return handler.streams(delivery)
        if isinstance(handler, _LearningReaction):
            return self._learned.streams(handler.reaction.command_of(delivery))
        return ()

    def _learning(self, handler: Handler) -> Handler:
        if isinstance(handler, JoinedReaction) and isinstance(handler.reaction, CommandReaction):
            return _LearningReaction(handler.store, handler.reaction, self._learned)
        return handler

    async def _run_handlers(self, conn: Conn,
                            work: Sequence[tuple[Handler, Delivery, otel_context.Context | None]]) -> None:
        first_steps = await _first_steps_together(conn, [(handler, delivery) for handler, delivery, _ in work])
        for index, (handler, delivery, trace_context) in enumerate(work):
            with _traced(trace_context):
                if isinstance(handler, HandledTogether):
                    await handler.then(conn, delivery, first_steps[index])
                else:
                    await handler(conn, delivery)


class LearnedStreams:
    """Which aggregates each command type's handler loads, and by which of the command's fields: seen once, the
    streams of later deliveries' commands are read ahead, in one statement for a batch. A guess never changes what
    a handler does: a stream read ahead and not loaded costs a row read, one loaded and not read ahead a statement."""

    def __init__(self) -> None:
        self._by_command: dict[type[Any], set[tuple[AggregateType[Any], str]]] = {}

    def learn(self, command: object, loaded: Sequence[tuple[AggregateType[Any], object]]) -> None:
        if command is None or not loaded:
            return
        values = _fields_of(command)
        known = self._by_command.setdefault(type(command), set())
        for aggregate, aggregate_id in loaded:
            known.update((aggregate, name) for name, value in values.items() if value == aggregate_id)

    def streams(self, command: object) -> list[str]:
        if command is None:
            return []
        known = self._by_command.get(type(command), ())
        return [aggregate.stream_id(getattr(command, name)) for aggregate, name in known]


def _fields_of(command: object) -> dict[str, object]:
    if dataclasses.is_dataclass(command):
        return {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
    return dict(vars(command))


@dataclass(frozen=True)
class _LearningReaction:
    """A command reaction joined to the delivery's transaction, as `JoinedReaction` runs it, noting what it loads."""

    store: EventStore
    reaction: CommandReaction
    learned: LearnedStreams

    async def __call__(self, conn: Conn, delivery: Delivery) -> None:
        async with PostgresUnitOfWork(self.store, delivery.context, conn=conn) as uow:
            await self.reaction(delivery, uow)
        self.learned.learn(self.reaction.command_of(delivery), uow.loaded)


async def _first_steps_together(conn: Conn, work: Sequence[tuple[Handler, Delivery]]) -> dict[int, Any]:
    """The first steps of the `HandledTogether` handlers among `work`, one call for each such handler with all of its
    deliveries; each result under its delivery's index in `work`."""
    together: dict[int, tuple[HandledTogether[Any], list[int]]] = {}
    for index, (handler, _) in enumerate(work):
        if isinstance(handler, HandledTogether):
            together.setdefault(id(handler), (handler, []))[1].append(index)
    results: dict[int, Any] = {}
    for handler, indexes in together.values():
        results.update(zip(indexes, await handler.first(conn, [work[index][1] for index in indexes]), strict=True))
    return results
