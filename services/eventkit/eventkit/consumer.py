"""Consuming events: idempotent inbox, bounded retries counted by the application, dead-lettering.

A delivery is handled in one database transaction that first records its event id in `inbox`; a
redelivered event finds its id there and has no second effect. The message is acked only after the
commit. What can never succeed goes to `<service>.inbox.dlq` at once, with the reason in headers:
a body that is not a CloudEvent, an unknown type or version, data that fails its schema, values the schema
allows but PostgreSQL cannot store (a NUL in a string, an integer beyond 64 bits). A handler
that raises is retried (republished with an attempt count in a header, then acked) up to
`max_attempts`, then dead-lettered. A database outage is not the message's fault: it is requeued
after a pause, without counting, so good messages are never dead-lettered for it.

Deliveries that are in hand together (up to `batch_max`) are handled in one transaction, a group commit: one
BEGIN, one inbox statement and one COMMIT for all of them instead of one each, which is most of what a delivery
costs. If anything in such a batch fails, it is rolled back and each delivery is handled again on its own, so a
bad one never takes good ones with it. A lone delivery is handled at once: nothing waits for a batch to fill.
The runtime hands the event store's `appends_written_together` in as the batch's scope, so the handlers' appends
are written in one statement when the batch's last handler has run, not one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from opentelemetry import context as otel_context
from pydantic import ValidationError

from eventkit import db, metrics
from eventkit.broker_users import PUBLISHER_HEADER, UNAUTHORISED_PUBLISHER, publisher_of, publisher_refusal
from eventkit.db import Conn, is_transient
from eventkit.events import Actor, CommandContext
from eventkit.group_commit import GroupCommitter, Pending
from eventkit.store import ConcurrencyError
from eventkit.telemetry import continued_from
from eventkit.topology import dead_letter_queue, inbox_arguments, inbox_queue
from secondopinion_contracts import BY_TYPE, CONTENT_TYPE, CloudEvent, EventData

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-eventkit-attempts"
REASON_HEADER = "x-eventkit-dead-letter-reason"
DETAIL_HEADER = "x-eventkit-dead-letter-detail"
SOURCE_QUEUE_HEADER = "x-eventkit-source-queue"


Handler = Callable[[Conn, "Delivery"], Awaitable[None]]
T = TypeVar("T")
# Wraps the handling of a batch of deliveries in its transaction (the event store's `appends_written_together`),
# given the streams the batch's handlers will load.
BatchScope = Callable[[Conn, Sequence[str]], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Delivery:
    envelope: CloudEvent
    data: EventData
    context: CommandContext


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


class Verdict(enum.Enum):
    DONE = "done"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    detail: str = ""
    case_id: str | None = None


class Consumer:
    """Turns deliveries of the events a service reacts to into handler calls, exactly once each."""

    def __init__(self, service: str, pool: asyncpg.Pool, handlers: Mapping[type[EventData], Handler], *,
                 catch_all: Handler | None = None, extra_bindings: tuple[str, ...] = (),
                 max_attempts: int = 5, retry_base_delay: float = 0.2, retry_max_delay: float = 5.0,
                 transient_delay: float = 1.0, prefetch: int = 32, batch_max: int = 32,
                 concurrent_batches: int = 2, batch_scope: BatchScope | None = None,
                 broker_user: str | None = None) -> None:
        self.service = service
        self.broker_user = broker_user  # the user it connects as: the user_id of the copies it sends itself
        self.pool = pool
        self.handlers = {event.type_name(): handler for event, handler in handlers.items()}
        self.catch_all = catch_all
        self.extra_bindings = extra_bindings
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.transient_delay = transient_delay
        self.prefetch = prefetch
        self.batch_max = batch_max
        self.batch_scope = batch_scope
        self._batches: GroupCommitter[tuple[Handler, Delivery], Outcome] = GroupCommitter(
            self._commit_batch, batch_max=batch_max, concurrent_batches=concurrent_batches)
        self._case_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._case_users: Counter[str] = Counter()  # deliveries of each case holding or awaiting its lock
        self.subscriber: Any = None

    @property
    def queue(self) -> str:
        return inbox_queue(self.service)

    @property
    def bindings(self) -> tuple[str, ...]:
        keys = [type_name.removeprefix("secondopinion.") for type_name in self.handlers]
        return (*keys, *self.extra_bindings)

    async def process(self, body: bytes, publisher: str | None = None) -> Outcome:
        """Handle one delivery's body; never raises for the message's own faults. `publisher`: the broker user who
        published it ("" for none), which must be the owner of the event's type; None only for a body handed in
        by the process itself, not delivered by the broker."""
        try:
            envelope = CloudEvent.model_validate_json(body)
        except ValidationError as error:
            return Outcome(Verdict.DEAD_LETTER, "invalid-envelope", _short(error))
        if publisher is not None and envelope.type in BY_TYPE:
            refusal = publisher_refusal(envelope.type, publisher)
            if refusal is not None:
                return Outcome(Verdict.DEAD_LETTER, UNAUTHORISED_PUBLISHER, refusal, envelope.subject)
        handler = self.handlers.get(envelope.type)
        if handler is None and envelope.supersededby and self.catch_all is not None:
            # A deprecated copy published beside its successor: the catch-all takes the successor only.
            return Outcome(Verdict.DONE, "superseded")
        handler = handler or (self.catch_all if envelope.type in BY_TYPE else None)
        if handler is None:
            return Outcome(Verdict.DEAD_LETTER, "unknown-event-type", f"no handler for type {envelope.type}")
        try:
            data = BY_TYPE[envelope.type].parse_lenient(envelope.data)
        except ValidationError as error:
            return Outcome(Verdict.DEAD_LETTER, "schema-invalid", _short(error), envelope.subject)
        context = CommandContext(
            actor=Actor.service(self.service), correlation_id=envelope.correlationid,
            causation_id=str(envelope.id), command=envelope.event_name,
        )
        delivery = Delivery(envelope=envelope, data=data, context=context)
        started = time.perf_counter()
        case = envelope.subject
        self._case_users[case] += 1
        try:
            async with self._case_locks[case]:
                try:
                    with continued_from(envelope.traceparent, f"{self.service} handle {envelope.event_name}",
                                        case_id=case, event_id=str(envelope.id)):
                        outcome = await self._handle(handler, delivery)
                        log.info("%s %s: %s", envelope.type, envelope.id, outcome.verdict.value,
                                 extra={"case_id": case, "service": self.service})
                except Exception as error:
                    outcome = _outcome_of_failure(error, case)
        finally:
            # The case's last delivery in this process drops its lock. (`locked()` cannot tell: it is false
            # between a release and the next waiter's wake-up, and a fresh lock then would let two run at once.)
            self._case_users[case] -= 1
            if not self._case_users[case]:
                del self._case_users[case]
                del self._case_locks[case]
        metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
        metrics.EVENTS_HANDLED.labels(self.service, envelope.type, outcome.verdict.value).inc()
        if outcome.verdict is Verdict.DONE and envelope.time is not None:
            delay = (datetime.now(UTC) - envelope.time).total_seconds()
            metrics.PROJECTION_DELAY.labels(self.service, envelope.type).observe(max(delay, 0.0))
        return outcome

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
            load_ahead = [stream for handler, delivery, _ in work if isinstance(handler, LoadsStreams)
                          for stream in handler.streams(delivery)]
            async with self.batch_scope(conn, load_ahead):
                return await self._handle_in(conn, work)

    async def _handle_once(self, handler: Handler, delivery: Delivery,
                           trace_context: otel_context.Context | None = None) -> Outcome:
        for _ in range(5):
            try:
                async with db.transaction(self.pool) as conn:
                    [outcome] = await self._handle_in(conn, [(handler, delivery, trace_context)])
                return outcome
            except ConcurrencyError:
                continue  # another writer touched the same stream: decide again from fresh state
        return Outcome(Verdict.RETRY, "concurrency", "stream kept changing under the handler")

    async def _handle_in(self, conn: Conn,
                         work: Sequence[tuple[Handler, Delivery, otel_context.Context | None]]) -> list[Outcome]:
        """In `conn`'s transaction: record each delivery in the inbox and run the handler of each one not recorded
        before, under its own delivery's trace when one is given (a committer handles others' deliveries)."""
        first_times = {row["message_id"] for row in await conn.fetch(
            "INSERT INTO inbox (message_id, event_type) SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT DO NOTHING RETURNING message_id",
            [str(delivery.envelope.id) for _, delivery, _ in work],
            [delivery.envelope.type for _, delivery, _ in work],
        )}
        outcomes: list[Outcome] = []
        first_handled: list[tuple[Handler, Delivery, otel_context.Context | None]] = []
        for handler, delivery, trace_context in work:
            message_id = str(delivery.envelope.id)
            if message_id not in first_times:  # recorded before, or earlier in this batch
                outcomes.append(Outcome(Verdict.DUPLICATE))
                continue
            first_times.discard(message_id)
            first_handled.append((handler, delivery, trace_context))
            outcomes.append(Outcome(Verdict.DONE))
        first_steps = await _first_steps_together(conn, [(handler, delivery) for handler, delivery, _ in first_handled])
        for index, (handler, delivery, trace_context) in enumerate(first_handled):
            token = otel_context.attach(trace_context) if trace_context is not None else None
            try:
                if isinstance(handler, HandledTogether):
                    await handler.then(conn, delivery, first_steps[index])
                else:
                    await handler(conn, delivery)
            finally:
                if token is not None:
                    otel_context.detach(token)
        return outcomes

    def attach(self, broker: RabbitBroker) -> None:
        """Subscribe on `broker`: declared, bound and acked by this consumer's rules."""
        queue = RabbitQueue(self.queue, durable=True, arguments=inbox_arguments(self.service))  # type: ignore[call-overload]
        subscriber = broker.subscriber(queue, ack_policy=AckPolicy.MANUAL, decoder=_undecoded,
                                       channel=Channel(prefetch_count=self.prefetch))

        @subscriber
        async def on_message(_: bytes) -> None:
            # The runtime's broker runs without FastStream's dependency injection (`apply_types=False`): resolving the
            # message argument for every delivery held the consumer benchmark 25-30% below its rate without it. The
            # message is in the context FastStream keeps per delivery.
            message: RabbitMessage = broker.context.get_local("message")
            try:
                await self.settle(broker, message)
            except Exception as error:
                # Settling itself failed (a retry or dead-letter copy not confirmed, the ack refused): hand the
                # message back rather than leave it unacked, holding a prefetch slot, until the channel dies.
                log.error("could not settle %s, handing it back: %s", message.message_id, _short(error))
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)

        self.subscriber = subscriber

    async def settle(self, broker: RabbitBroker, message: RabbitMessage) -> None:
        raw = message.raw_message
        headers = dict(raw.headers or {})
        publisher = publisher_of(raw.user_id, headers, self.broker_user)
        outcome = await self.process(raw.body, publisher)
        if outcome.verdict in (Verdict.DONE, Verdict.DUPLICATE):
            await message.ack()
            return
        if outcome.verdict is Verdict.REQUEUE:
            log.warning("transient failure on %s, requeueing: %s", raw.message_id, outcome.detail,
                        extra={"case_id": outcome.case_id})
            await asyncio.sleep(self.transient_delay)
            await message.nack(requeue=True)
            return
        headers[PUBLISHER_HEADER] = publisher
        attempts = _attempts_before(headers) + 1
        if outcome.verdict is Verdict.RETRY and attempts < self.max_attempts:
            await asyncio.sleep(min(self.retry_base_delay * 2 ** (attempts - 1), self.retry_max_delay))
            log.warning("handler failed on %s (attempt %d of %d): %s", raw.message_id, attempts,
                        self.max_attempts, outcome.detail, extra={"case_id": outcome.case_id})
            await self._send(broker, raw.body, self.queue, {**headers, ATTEMPTS_HEADER: attempts}, raw.message_id)
        else:
            reason = outcome.reason if outcome.verdict is Verdict.DEAD_LETTER else "retries-exhausted"
            log.error("dead-lettering %s: %s (%s)", raw.message_id, reason, outcome.detail,
                      extra={"case_id": outcome.case_id})
            metrics.DEAD_LETTERED.labels(self.service, reason).inc()
            await self._send(broker, raw.body, dead_letter_queue(self.service), {
                **headers, ATTEMPTS_HEADER: attempts, REASON_HEADER: reason,
                DETAIL_HEADER: outcome.detail[:1000], SOURCE_QUEUE_HEADER: self.queue,
                "x-eventkit-routing-key": raw.routing_key or "",
            }, raw.message_id)
        await message.ack()

    async def _send(self, broker: RabbitBroker, body: bytes, queue: str, headers: dict[str, Any],
                    message_id: str | None) -> None:
        await broker.publish(body, queue=queue, persist=True, headers=headers, message_id=message_id,
                             content_type=CONTENT_TYPE, timeout=10, user_id=self.broker_user)

    def is_attached(self) -> bool:
        """The subscriber holds a live consumer on an open channel (not just an open connection)."""
        subscriber = self.subscriber
        if subscriber is None:
            return False
        queue_obj = getattr(subscriber, "_queue_obj", None)
        tag = getattr(subscriber, "_consumer_tag", None)
        return bool(queue_obj is not None and tag and not queue_obj.channel.is_closed)


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


async def _undecoded(message: RabbitMessage) -> bytes:
    """The body as it came (`process` parses it). FastStream's own decoder trusts the content type a publisher
    claims: a body that is not the JSON (or UTF-8 text) it says it is raised there, before `settle`, and the
    message stayed unacked, holding a prefetch slot for good."""
    return message.body


def _outcome_of_failure(error: Exception, case: str) -> Outcome:
    if is_transient(error):
        return Outcome(Verdict.REQUEUE, "transient", _short(error), case)
    if isinstance(error, asyncpg.DataError):
        # PostgreSQL refused the values themselves (a NUL in a string, an integer beyond 64 bits: both within the
        # contracts, neither storable). The same values fail the same way every time: no point in retrying.
        return Outcome(Verdict.DEAD_LETTER, "unstorable-data", _short(error), case)
    return Outcome(Verdict.RETRY, "handler-failed", _short(error), case)


def _attempts_before(headers: Mapping[str, Any]) -> int:
    """How often the message was tried, by the count this consumer writes when it retries one. Any other value
    (another publisher's junk or forgery) counts as none: parsing must not fail, or the message would stay
    unacked and hold a prefetch slot for good, and retries must stay bounded."""
    value = headers.get(ATTEMPTS_HEADER)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def _short(error: BaseException) -> str:
    """A reason fit for logs and DLQ headers: what failed where, never the offending values (which may be
    personal data in a hostile or mistaken message)."""
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in error.errors(include_input=False, include_url=False))
        return f"{error.title} invalid: {problems}"[:1000]
    if isinstance(error, asyncpg.DataError):  # its message can quote the refused value
        return f"{error.__class__.__name__}: PostgreSQL refused a value (SQLSTATE {error.sqlstate})"
    return f"{error.__class__.__name__}: {error}"[:1000]
