"""The contract every event store and unit of work keeps, one abstract suite run against each backend (PostgreSQL,
with and without a projection; in memory), as the `eventsourcing` library runs its recorder suite: append, conflict,
load, upcast, outbox rows, inbox dedupe, after-commit hooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from eventkit import db
from eventkit.aggregate import AggregateType
from eventkit.batching import BatchingEventStore
from eventkit.events import Event
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.store import ConcurrencyError, EventStore
from eventkit.unit_of_work import PostgresUnitOfWork, UnitOfWork
from secondopinion_contracts import CloudEvent

from .test_store import TYPES, KeepingNothing, NoteTaken, context, document


class Backend(ABC):
    """A store under test, as the suite sees it."""

    @abstractmethod
    def unit_of_work(self, case: str = "case-1") -> AbstractAsyncContextManager[UnitOfWork]: ...

    @abstractmethod
    async def outbox(self) -> list[CloudEvent]: ...

    @abstractmethod
    async def inbox(self) -> set[str]: ...

    @abstractmethod
    async def store_as_old_release(self, stream_id: str, name: str, schema_version: int, data: str) -> None: ...


class InMemory(Backend):
    def __init__(self) -> None:
        self.store = InMemoryEventStore("intake", TYPES)

    def unit_of_work(self, case: str = "case-1") -> AbstractAsyncContextManager[UnitOfWork]:
        return InMemoryUnitOfWork(self.store, context(case))

    async def outbox(self) -> list[CloudEvent]:
        return list(self.store.outbox)

    async def inbox(self) -> set[str]:
        return set(self.store.inbox)

    async def store_as_old_release(self, stream_id: str, name: str, schema_version: int, data: str) -> None:
        self.store.store_as(stream_id, "note", name, schema_version, data)


class Postgres(Backend):
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def unit_of_work(self, case: str = "case-1") -> AbstractAsyncContextManager[UnitOfWork]:
        return PostgresUnitOfWork(self.store, context(case))

    async def outbox(self) -> list[CloudEvent]:
        async with self.store.pool.acquire() as conn:
            rows = await conn.fetch("SELECT body FROM outbox ORDER BY id")
        return [CloudEvent.model_validate_json(row["body"]) for row in rows]

    async def inbox(self) -> set[str]:
        async with self.store.pool.acquire() as conn:
            return {row["message_id"] for row in await conn.fetch("SELECT message_id FROM inbox")}

    async def store_as_old_release(self, stream_id: str, name: str, schema_version: int, data: str) -> None:
        async with self.store.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version,
                                       data, metadata) VALUES ($1, 'note', 1, $2, $3, $4, $5, '{}')""",
                stream_id, uuid.uuid4(), name, schema_version, data)


NOTES = AggregateType[list[str]]("note", list, lambda titles, event: [*titles, getattr(event, "title", "?")])


async def append(backend: Backend, stream_id: str, expected_version: int, events: list[Event]) -> list[int]:
    async with backend.unit_of_work() as uow:
        uow.append(stream_id, "case", expected_version, events)
        return [recorded.version for recorded in await uow.commit()]


class UnitOfWorkContract:
    """Every backend passes these; subclasses provide the `backend` fixture."""

    async def test_appends_load_in_version_order_with_their_metadata(self, backend: Backend) -> None:
        documents: list[Event] = [document(uuid.uuid4()) for _ in range(3)]
        assert await append(backend, "case-a", 0, documents[:2]) == [1, 2]
        assert await append(backend, "case-a", 2, documents[2:]) == [3]
        async with backend.unit_of_work() as uow:
            loaded = await uow.load_stream("case-a")
        assert [event.version for event in loaded] == [1, 2, 3]
        assert [event.data for event in loaded] == documents
        assert loaded[0].metadata["actor"] == {"id": "nurse-7", "role": "coordinator"}
        assert [event.position for event in loaded] == sorted({event.position for event in loaded})

    async def test_an_aggregate_loads_with_its_state_and_version(self, backend: Backend) -> None:
        async with backend.unit_of_work() as uow:
            empty = await uow.load(NOTES, "n1")
            uow.save(empty, [NoteTaken(title="first", body=""), NoteTaken(title="second", body="")])
            await uow.commit()
        async with backend.unit_of_work() as uow:
            loaded = await uow.load(NOTES, "n1")
        assert (empty.state, empty.version) == ([], 0)
        assert (loaded.stream_id, loaded.state, loaded.version) == ("note-n1", ["first", "second"], 2)

    async def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(self, backend: Backend) -> None:
        await append(backend, "case-b", 0, [document(uuid.uuid4())])
        for stale in (0, 5):
            with pytest.raises(ConcurrencyError):
                await append(backend, "case-b", stale, [document(uuid.uuid4())])
        async with backend.unit_of_work() as uow:
            assert [event.version for event in await uow.load_stream("case-b")] == [1]
        assert len(await backend.outbox()) == 1

    async def test_appends_to_several_streams_commit_all_or_none(self, backend: Backend) -> None:
        await append(backend, "case-c", 0, [document(uuid.uuid4())])
        async with backend.unit_of_work() as uow:
            uow.append("case-d", "case", 0, [document(uuid.uuid4())])
            uow.append("case-c", "case", 0, [document(uuid.uuid4())])  # stale: case-c is at 1
            with pytest.raises(ConcurrencyError):
                await uow.commit()
        async with backend.unit_of_work() as uow:
            assert await uow.load_stream("case-d") == []
            uow.append("case-d", "case", 0, [document(uuid.uuid4())])
            uow.append("case-c", "case", 1, [document(uuid.uuid4())])
            assert [(event.stream_id, event.version) for event in await uow.commit()] == [("case-d", 1),
                                                                                         ("case-c", 2)]

    async def test_concurrent_commits_at_one_version_have_exactly_one_winner(self, backend: Backend) -> None:
        await append(backend, "case-e", 0, [document(uuid.uuid4())])

        async def attempt() -> str:
            try:
                await append(backend, "case-e", 1, [document(uuid.uuid4())])
                return "won"
            except ConcurrencyError:
                return "conflict"

        outcomes = await asyncio.gather(*(attempt() for _ in range(8)))
        assert sorted(outcomes) == ["conflict"] * 7 + ["won"]

    async def test_a_unit_of_work_left_uncommitted_writes_nothing(self, backend: Backend) -> None:
        async with backend.unit_of_work() as uow:
            uow.append("case-f", "case", 0, [document(uuid.uuid4())])
            assert await uow.record_in_inbox("message-f", "test")
        with contextlib.suppress(RuntimeError):
            async with backend.unit_of_work() as uow:
                uow.append("case-f", "case", 0, [document(uuid.uuid4())])
                raise RuntimeError("the handler failed before it committed")
        async with backend.unit_of_work() as uow:
            assert await uow.load_stream("case-f") == []
        assert await backend.outbox() == []
        assert await backend.inbox() == set()

    async def test_published_events_get_outbox_rows_and_private_ones_none(self, backend: Backend) -> None:
        async with backend.unit_of_work("case-g") as uow:
            uow.append("case-g", "case", 0, [document(uuid.uuid4())])
            uow.append("note-g", "note", 0, [NoteTaken(title="private", body="")])
            [published, _] = await uow.commit()
        [envelope] = await backend.outbox()
        assert envelope.id == published.event_id
        assert envelope.type == "secondopinion.intake.DocumentReceived.v1"
        assert envelope.routing_key == "intake.DocumentReceived.v1"
        assert (envelope.subject, envelope.sequence, envelope.actorid) == ("case-g", 1, "nurse-7")

    async def test_old_event_versions_are_upcast_on_load(self, backend: Backend) -> None:
        await backend.store_as_old_release("note-h", "NoteTaken", 1, json.dumps({"text": "Referral: by post"}))
        async with backend.unit_of_work() as uow:
            [loaded] = await uow.load_stream("note-h")
        assert loaded.data == NoteTaken(title="Referral", body="by post")

    async def test_an_event_is_recorded_in_the_inbox_once(self, backend: Backend) -> None:
        async with backend.unit_of_work() as uow:
            assert await uow.record_in_inbox("message-1", "secondopinion.intake.CaseAccepted.v1")
            assert not await uow.record_in_inbox("message-1", "secondopinion.intake.CaseAccepted.v1")
            uow.append("case-i", "case", 0, [document(uuid.uuid4())])
            await uow.commit()
        async with backend.unit_of_work() as uow:
            assert not await uow.record_in_inbox("message-1", "secondopinion.intake.CaseAccepted.v1")
            assert await uow.record_in_inbox("message-2", "secondopinion.intake.CaseAccepted.v1")
            await uow.commit()
        assert await backend.inbox() == {"message-1", "message-2"}

    async def test_after_commit_hooks_run_once_after_the_commit_and_never_without_one(self, backend: Backend) -> None:
        ran: list[str] = []
        await append(backend, "case-j", 0, [document(uuid.uuid4())])

        def note_committed() -> None:
            ran.append("committed")

        async with backend.unit_of_work() as uow:
            uow.append("case-j", "case", 1, [document(uuid.uuid4())])
            uow.after_commit(note_committed)
            uow.after_commit(note_committed)
            assert ran == []
            await uow.commit()
        assert ran == ["committed"]
        async with backend.unit_of_work() as uow:
            uow.append("case-j", "case", 1, [document(uuid.uuid4())])
            uow.after_commit(lambda: ran.append("conflicted"))
            with pytest.raises(ConcurrencyError):
                await uow.commit()
        async with backend.unit_of_work() as uow:
            uow.after_commit(lambda: ran.append("rolled back"))
        assert ran == ["committed"]


class TestInMemory(UnitOfWorkContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return InMemory()


STORES = {"plain": EventStore, "batching": BatchingEventStore}


class TestPostgres(UnitOfWorkContract):
    # Without projections an append commits by its one statement; with one, in a transaction around it and the
    # projection's writes. The batching store keeps the same contract (it changes speed, not behaviour).
    @pytest.fixture(params=[(store, projections) for store in STORES for projections in ("none", "one")],
                    ids=lambda param: f"{param[0]} store, projections: {param[1]}")
    async def backend(self, database: str, request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
        await db.migrate(database, [])
        pool = await db.create_pool(database)
        store, projections = request.param
        try:
            yield Postgres(STORES[store](pool, service="intake", types=TYPES,
                                         projections=[KeepingNothing()] if projections == "one" else []))
        finally:
            await pool.close()


class TestPostgresJoined(UnitOfWorkContract):
    """Units of work joined to a caller's transaction, as a consumer's delivery opens one: the caller commits it when
    the unit of work committed, and rolls it back when it did not (a handler that raised)."""

    # (Not the batching store's `appends_written_together`: there a conflict is raised when the batch's appends are
    # written together, at its end, and the whole batch is handled again one by one: test_store_written_together.py.)
    @pytest.fixture
    async def backend(self, database: str) -> AsyncIterator[Backend]:
        await db.migrate(database, [])
        pool = await db.create_pool(database)
        try:
            yield JoinedPostgres(EventStore(pool, service="intake", types=TYPES))
        finally:
            await pool.close()


class _NotCommitted(Exception):
    pass


class JoinedPostgres(Postgres):
    @asynccontextmanager
    async def unit_of_work(self, case: str = "case-1") -> AsyncIterator[UnitOfWork]:
        with contextlib.suppress(_NotCommitted):
            async with db.transaction(self.store.pool) as conn:
                async with PostgresUnitOfWork(self.store, context(case), conn=conn) as uow:
                    yield uow
                if not uow.committed:
                    raise _NotCommitted
