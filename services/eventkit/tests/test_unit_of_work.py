"""The PostgreSQL unit of work beyond the shared contract (test_contract.py): how it writes (group-committed alone, in
a transaction with the handler's own statements), joined to a consumer's delivery, and run again on a conflict."""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from eventkit import db
from eventkit.aggregate import AggregateType
from eventkit.batching import BatchingEventStore
from eventkit.bootstrap import Dispatcher, bind
from eventkit.consumer import Consumer, Delivery, Verdict, joined_to_delivery, reactions_by_command
from eventkit.events import CommandContext, Event, RecordedEvent
from eventkit.memory import InMemoryEventStore, InMemoryUnitOfWork
from eventkit.store import ConcurrencyError, EventStore
from eventkit.unit_of_work import PendingAppend, PostgresUnitOfWork, UnitOfWork, connection_of, run_retrying
from secondopinion_contracts.events.intake import CaseAccepted

from .test_consumer import accepted_event
from .test_store import TYPES, context, document


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE effects (note text NOT NULL)")
    return EventStore(pool, service="intake", types=TYPES)


async def scalar(store: EventStore, query: str) -> object:
    async with store.pool.acquire() as conn:
        return await conn.fetchval(query)


async def test_units_of_work_with_one_append_each_are_group_committed(pool: asyncpg.Pool) -> None:
    store = BatchingEventStore(pool, service="intake", types=TYPES)

    async def command(index: int) -> None:
        async with PostgresUnitOfWork(store, context()) as uow:
            uow.append(f"case-{index}", "case", 0, [document(uuid.uuid4())])
            await uow.commit()

    await asyncio.gather(*(command(index) for index in range(12)))
    assert await scalar(store, "SELECT count(*) FROM events") == 12
    # The first goes at once; those that came meanwhile are written together (two batches commit at a time).
    assert await scalar(store, "SELECT count(DISTINCT xmin::text) FROM events") <= 3  # type: ignore[operator]


async def test_the_handlers_own_statements_commit_with_its_appends_or_not_at_all(store: EventStore) -> None:
    async with PostgresUnitOfWork(store, context()) as uow:
        conn = await uow.connection()
        await conn.execute("INSERT INTO effects VALUES ('kept')")
        uow.append("case-a", "case", 0, [document(uuid.uuid4())])
        await uow.commit()
    async with PostgresUnitOfWork(store, context()) as uow:
        conn = await uow.connection()
        await conn.execute("INSERT INTO effects VALUES ('lost')")
        uow.append("case-a", "case", 0, [document(uuid.uuid4())])  # stale
        with pytest.raises(ConcurrencyError):
            await uow.commit()
    async with PostgresUnitOfWork(store, context()) as uow:
        conn = await uow.connection()
        await conn.execute("INSERT INTO effects VALUES ('never committed')")
    async with store.pool.acquire() as conn:
        assert [row["note"] for row in await conn.fetch("SELECT note FROM effects")] == ["kept"]
    assert await scalar(store, "SELECT count(*) FROM events") == 1


async def test_loads_after_the_connection_is_opened_read_in_its_transaction(store: EventStore) -> None:
    async with PostgresUnitOfWork(store, context()) as uow:
        conn = await uow.connection()
        uow.append("case-b", "case", 0, [document(uuid.uuid4())])
        await store.append("case-b", "case", 0, [document(uuid.uuid4())], context(), conn=conn)
        assert [event.version for event in await uow.load_stream("case-b")] == [1], "its transaction's own append"
        with pytest.raises(ConcurrencyError):
            await uow.commit()


@dataclass(frozen=True)
class Accept:
    case_id: uuid.UUID


async def accept(command: Accept, uow: UnitOfWork) -> list[RecordedEvent]:
    async with uow:
        uow.append(f"case-{command.case_id}", "case", 0, [document(command.case_id)])
        return await uow.commit()


async def test_a_reaction_writes_with_the_deliverys_inbox_row_and_its_hooks_run_after(store: EventStore) -> None:
    ran: list[int] = []

    async def react(delivery: Delivery, uow: UnitOfWork) -> None:
        assert isinstance(delivery.data, CaseAccepted)
        uow.after_commit(lambda: ran.append(len(ran)))
        await accept(Accept(delivery.data.case_id), uow)

    consumer = Consumer("intake", store.pool, {CaseAccepted: joined_to_delivery(store, react)})
    events = [accepted_event() for _ in range(6)]
    outcomes = await asyncio.gather(*(consumer.process(event.to_json_bytes()) for event in events))
    assert {outcome.verdict for outcome in outcomes} == {Verdict.DONE}
    assert ran == list(range(6))
    assert await scalar(store, "SELECT count(*) FROM events") == 6
    assert await scalar(store, "SELECT count(*) FROM inbox") == 6
    # Delivered again: the inbox row is there, the reaction does not run.
    assert (await consumer.process(events[0].to_json_bytes())).verdict is Verdict.DUPLICATE
    assert await scalar(store, "SELECT count(*) FROM events") == 6


async def test_a_reaction_that_fails_leaves_neither_its_appends_nor_the_inbox_row(store: EventStore) -> None:
    async def react(delivery: Delivery, uow: UnitOfWork) -> None:
        uow.append("case-c", "case", 0, [document(uuid.uuid4())])
        await uow.commit()
        raise RuntimeError("after its commit, before the delivery's")

    consumer = Consumer("intake", store.pool, {CaseAccepted: joined_to_delivery(store, react)})
    assert (await consumer.process(accepted_event().to_json_bytes())).verdict is Verdict.RETRY
    assert await scalar(store, "SELECT count(*) FROM events") == 0
    assert await scalar(store, "SELECT count(*) FROM inbox") == 0


async def test_reactions_turn_an_event_into_a_command_for_its_handler() -> None:
    store = InMemoryEventStore("intake", TYPES)
    def to_command(delivery: Delivery) -> Accept | None:
        assert isinstance(delivery.data, CaseAccepted)
        return Accept(delivery.data.case_id) if delivery.data.department else None

    reactions = reactions_by_command({CaseAccepted: to_command}, {Accept: accept})
    event = accepted_event()
    data = CaseAccepted.model_validate(event.data)
    await reactions[CaseAccepted](Delivery(event, data, context()), InMemoryUnitOfWork(store, context()))
    assert [recorded.stream_id for recorded in await store.load(f"case-{data.case_id}")] == [f"case-{data.case_id}"]
    nothing = data.model_copy(update={"department": ""})
    await reactions[CaseAccepted](Delivery(event, nothing, context()), InMemoryUnitOfWork(store, context()))
    assert len(store.new_events()) == 1


async def test_a_handler_is_run_again_on_a_fresh_unit_of_work_while_it_conflicts() -> None:
    store = InMemoryEventStore("intake", TYPES)
    units: list[UnitOfWork] = []

    def fresh(_: CommandContext) -> UnitOfWork:
        units.append(InMemoryUnitOfWork(store, context()))
        return units[-1]

    async def append_at_zero_twice_then_at_the_version(command: Accept, uow: UnitOfWork) -> list[RecordedEvent]:
        async with uow:
            loaded = await uow.load_stream("case-d")
            uow.append("case-d", "case", len(loaded) if len(units) > 2 else 0, [document(command.case_id)])
            return await uow.commit()

    await store.append("case-d", "case", 0, [document(uuid.uuid4())], context())
    recorded = await run_retrying(append_at_zero_twice_then_at_the_version, Accept(uuid.uuid4()), context(), fresh)
    assert [event.version for event in recorded] == [2]
    assert len(units) == 3, "two conflicts, each decided again on a fresh unit of work"
    units.clear()
    with pytest.raises(ConcurrencyError):
        await run_retrying(append_at_zero_twice_then_at_the_version, Accept(uuid.uuid4()), context(), fresh,
                           attempts=2)
    assert len(units) == 2


async def test_joined_units_of_work_need_a_transaction_whose_commit_runs_their_hooks(store: EventStore) -> None:
    async with store.pool.acquire() as conn, conn.transaction():
        uow = PostgresUnitOfWork(store, context(), conn=conn)
        uow.after_commit(lambda: None)
        with pytest.raises(RuntimeError, match=r"eventkit\.db\.transaction"):
            await uow.commit()
    async with db.transaction(store.pool) as opened:
        uow = PostgresUnitOfWork(store, context(), conn=opened)
        uow.append("case-e", "case", 0, [document(uuid.uuid4())])
        await uow.commit()


async def test_bound_handlers_get_the_dependencies_they_name_and_run_again_on_a_conflict() -> None:
    store = InMemoryEventStore("intake", TYPES)
    cases = AggregateType[int]("case", int, lambda count, _: count + 1)
    tries: list[int] = []

    async def note(command: Accept, uow: UnitOfWork, *, clock: str, racing: InMemoryEventStore) -> int:
        def decide(count: int) -> list[Event]:
            tries.append(count)
            if len(tries) == 1:  # another writer appends between this handler's load and its commit
                racing.append_all([PendingAppend(cases.stream_id(command.case_id), "case", 0,
                                                 [document(command.case_id)])], context())
            return [document(command.case_id)] * (count + 1)

        assert clock == "the clock"
        return len(await uow.execute(cases, command.case_id, decide))

    dispatch = Dispatcher(bind({Accept: note}, clock="the clock", racing=store, unused=object()),
                          lambda ctx: InMemoryUnitOfWork(store, ctx))
    case_id = uuid.uuid4()
    assert await dispatch(Accept(case_id), context()) == 2, "decided again on the state the other writer left"
    assert tries == [0, 1]
    assert [event.version for event in await store.load(f"case-{case_id}")] == [1, 2, 3]


async def test_a_services_adapter_reaches_the_connection_of_a_postgresql_unit_of_work_only(store: EventStore) -> None:
    async with PostgresUnitOfWork(store, context()) as uow:
        conn = await connection_of(uow)
        assert conn.is_in_transaction()
        assert await connection_of(uow) is conn
    with pytest.raises(TypeError, match="PostgreSQL's unit of work"):
        await connection_of(InMemoryUnitOfWork(InMemoryEventStore("intake", TYPES), context()))


async def test_a_transaction_that_cannot_open_raises_the_databases_error_and_the_unit_of_work_still_ends() -> None:
    """The database down (nothing listens): the handler's first statement raises the connection error, which the
    API answers as 503; ending the unit of work afterwards must not replace it (it once raised RuntimeError: 500)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{closed_port}/none", min_size=0)
    try:
        store = EventStore(pool, service="intake", types=TYPES)
        with pytest.raises(db.TRANSIENT_DB_ERRORS) as refused:
            async with PostgresUnitOfWork(store, context("down")) as uow:
                await connection_of(uow)
        assert db.is_transient(refused.value)
    finally:
        await pool.close()
