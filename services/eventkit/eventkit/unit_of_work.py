"""The unit of work a handler receives: what it loads, what it appends and what is to run once that has committed,
written all together or not at all.

    async with uow:
        case = await uow.load(cases, command.case_id)          # the aggregate and the version it was loaded at
        uow.save(case, domain.confirm(command, case.state))    # appended at that version when the uow commits
        uow.after_commit(lambda: log.info("confirmed"))
        recorded = await uow.commit()                          # ConcurrencyError if the stream moved meanwhile

A unit of work left without `commit()` writes nothing. A conflict fails the whole unit of work; `run_retrying`
(below) runs a handler again on a fresh one. `PostgresUnitOfWork` works on the PostgreSQL event store, either
in a transaction of its own or joined to a caller's (a consumer's delivery, with its inbox row: the caller commits);
`eventkit.memory.InMemoryUnitOfWork` does the same in memory, for fast handler tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import asyncpg

from eventkit import db
from eventkit.aggregate import AggregateType
from eventkit.db import Conn
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.inbox import record_in_inbox
from eventkit.retry import jittered, retrying
from eventkit.store import ConcurrencyError, EventStore

S = TypeVar("S")


@dataclass(frozen=True)
class Loaded(Generic[S]):
    """An aggregate as a unit of work loaded it: its state and the version new events are appended after."""

    stream_id: str
    stream_type: str
    state: S
    version: int


@dataclass(frozen=True)
class PendingAppend:
    """An append a unit of work will make when it commits."""

    stream_id: str
    stream_type: str
    expected_version: int
    events: Sequence[Event]


class UnitOfWork(ABC):
    """What a handler works through instead of a connection or the store. `context` (who, for which case, caused by
    what) goes into the metadata of every event it appends."""

    def __init__(self, context: CommandContext) -> None:
        self.context = context
        self.pending: list[PendingAppend] = []
        self._after_commit: list[Callable[[], object]] = []
        self.committed = False
        self.loaded: list[tuple[AggregateType[Any], object]] = []  # the aggregates loaded, for eventkit.batching

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if not self.committed:
            await self.rollback()

    @abstractmethod
    async def load_stream(self, stream_id: str) -> list[RecordedEvent]:
        """The stream's events in version order (none: a stream not begun)."""

    async def load(self, aggregate: AggregateType[S], aggregate_id: object) -> Loaded[S]:
        stream_id = aggregate.stream_id(aggregate_id)
        events = await self.load_stream(stream_id)
        self.loaded.append((aggregate, aggregate_id))
        return Loaded(stream_id, aggregate.stream_type, aggregate.fold(events), events[-1].version if events else 0)

    def append(self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[Event]) -> None:
        """`events` appended to the stream when the unit of work commits, if the stream is still at
        `expected_version` then (else the commit raises `ConcurrencyError` and writes nothing)."""
        if events:
            self.pending.append(PendingAppend(stream_id, stream_type, expected_version, tuple(events)))

    def save(self, loaded: Loaded[S], events: Sequence[Event]) -> None:
        """`events` appended to the aggregate's stream at the version it was loaded at."""
        self.append(loaded.stream_id, loaded.stream_type, loaded.version, events)

    async def execute(self, aggregate: AggregateType[S], aggregate_id: object,
                      decide: Callable[[S], Sequence[Event]]) -> list[RecordedEvent]:
        """The one-stream command: load the aggregate, decide on its state, append at its version, commit."""
        loaded = await self.load(aggregate, aggregate_id)
        self.save(loaded, decide(loaded.state))
        return await self.commit()

    def after_commit(self, hook: Callable[[], object]) -> None:
        """`hook` runs once the unit of work's writes have committed (waking a worker, say); never on rollback."""
        if hook not in self._after_commit:
            self._after_commit.append(hook)

    @abstractmethod
    async def record_in_inbox(self, message_id: str, event_type: str) -> bool:
        """Records a consumed event's id with the unit of work's writes; False if it was recorded before (a
        redelivery: the caller does nothing)."""

    @abstractmethod
    async def commit(self) -> list[RecordedEvent]:
        """Writes the pending appends, all or none, and returns their recorded events in the order appended. (Joined
        to a consumer's batch, whose appends are written together at its end, their positions are 0.)"""

    @abstractmethod
    async def rollback(self) -> None:
        """Drops what is pending: nothing of the unit of work is written."""

    def _discard(self) -> None:
        self.pending = []
        self._after_commit = []

    def _take_pending(self) -> list[PendingAppend]:
        pending, self.pending = self.pending, []
        return pending

    def _run_after_commit(self) -> None:
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            hook()


# What the service's bootstrap hands its command handlers' callers: a fresh unit of work for each attempt.
UnitOfWorkFactory = Callable[[CommandContext], UnitOfWork]


# What a handler is decided again for from fresh state: a concurrent writer appended to one of its streams, or two
# transactions taking the same rows in opposite orders.
CONFLICTS = (ConcurrencyError, asyncpg.DeadlockDetectedError)
C = TypeVar("C")
R = TypeVar("R")


async def run_retrying(handler: Callable[[C, UnitOfWork], Awaitable[R]], command: C, context: CommandContext,
                       units_of_work: UnitOfWorkFactory, *, attempts: int = 10) -> R:
    """`handler(command, uow)` on a fresh unit of work, again (after a jittered pause) while it ends in a conflict;
    the last conflict is raised (the API answers 409). So the loser of a race gets the domain's reason, decided on
    the winner's state, rather than a retry message."""
    async for attempt in retrying(attempts=attempts, on=CONFLICTS, wait=jittered(0.005)):
        with attempt:
            async with units_of_work(context) as uow:
                return await handler(command, uow)
    raise AssertionError("unreachable")


class PostgresUnitOfWork(UnitOfWork):
    """A unit of work on the PostgreSQL event store.

    On its own (`conn` not given) it opens a transaction only when it needs one: when the handler asks for
    `connection()` (its own SQL: a lock, a read model) or when it commits more than one append. Loads before that
    read committed state (the appends' version guards catch any change since); a commit of a single append hands it
    to the store's group commit, which writes it with the appends of concurrent commands. Joined to a caller's
    transaction (`conn` given: a consumer's delivery or batch, whose transaction holds the inbox rows), everything
    goes into that transaction and the caller commits: `commit()` writes the appends in it, the after-commit hooks
    run when it commits."""

    def __init__(self, store: EventStore, context: CommandContext, *, conn: Conn | None = None) -> None:
        super().__init__(context)
        self.store = store
        self._joined = conn is not None
        self._conn = conn
        self._transaction: AbstractAsyncContextManager[Conn] | None = None

    async def connection(self) -> Conn:
        """The unit of work's connection, in its transaction (opened now if it is not yet): for the handler's own
        statements, which then commit (or roll back) with its appends."""
        if self._conn is None:
            transaction = db.transaction(self.store.pool)
            # Kept only once open: one that failed to open (the database down) is not ended again, which would
            # raise a RuntimeError in place of the database's error (and answer 500 instead of 503).
            self._conn = await transaction.__aenter__()
            self._transaction = transaction
        return self._conn

    async def load_stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self.store.load(stream_id, conn=self._conn)

    async def before_commit(self, hook: db.BeforeCommit, item: object) -> None:
        """Hands `item` to `hook`, which runs once, with every item handed to it in the transaction, at its end and
        inside it (`eventkit.db.before_commit`): work each of a batch's deliveries asks for (refreshing its case's
        row) done once for all. Where the transaction was not opened by `eventkit.db.transaction`, at once."""
        conn = await self.connection()
        if not db.before_commit(conn, hook, item):
            await hook(conn, [item])

    async def record_in_inbox(self, message_id: str, event_type: str) -> bool:
        return bool(await record_in_inbox(await self.connection(), [(message_id, event_type)]))

    async def commit(self) -> list[RecordedEvent]:
        pending = self._take_pending()
        recorded: list[RecordedEvent] = []
        if self._conn is None and len(pending) <= 1:
            for append in pending:
                recorded += await self.store.append(append.stream_id, append.stream_type, append.expected_version,
                                                    append.events, self.context)
            self.committed = True
            self._run_after_commit()
            return recorded
        conn = await self.connection()
        try:
            for append in pending:
                recorded += await self.store.append(append.stream_id, append.stream_type, append.expected_version,
                                                    append.events, self.context, conn=conn)
        except BaseException as error:
            await self._end(error)
            raise
        self.committed = True
        if self._joined:
            # The caller's transaction commits later: the hooks wait for it.
            if not all(db.after_commit(conn, hook) for hook in self._after_commit):
                raise RuntimeError("a joined unit of work needs a transaction opened by eventkit.db.transaction")
            self._after_commit = []
        else:
            await self._end(None)
            self._run_after_commit()
        return recorded

    async def rollback(self) -> None:
        self._discard()
        if not self._joined and self._transaction is not None:
            await self._end(_RolledBack())

    async def _end(self, error: BaseException | None) -> None:
        """Ends the transaction this unit of work opened: committed, or rolled back with `error`."""
        transaction, self._transaction = self._transaction, None
        if transaction is None:
            return
        self._conn = None
        if error is None:
            await transaction.__aexit__(None, None, None)
        else:
            await transaction.__aexit__(type(error), error, error.__traceback__)


async def connection_of(uow: UnitOfWork) -> Conn:
    """The connection of a PostgreSQL unit of work, for a service's adapters of its own tables (which take a
    `UnitOfWork`, so that handlers stay `(command, uow)` and their tests pass fakes of the adapters)."""
    if not isinstance(uow, PostgresUnitOfWork):
        raise TypeError(f"this needs PostgreSQL's unit of work, not {type(uow).__name__}")
    return await uow.connection()


class _RolledBack(Exception):
    """Thrown into the transaction a unit of work opened, to roll it back."""


def postgres_units_of_work(store: EventStore) -> UnitOfWorkFactory:
    """A factory of units of work on `store`, each in a transaction of its own."""

    def new(context: CommandContext) -> UnitOfWork:
        return PostgresUnitOfWork(store, context)

    return new

