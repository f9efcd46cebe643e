"""Consuming events: idempotent inbox, bounded retries counted by the application, dead-lettering.

A delivery is handled in one database transaction that first records its event id in `inbox`; a
redelivered event finds its id there and has no second effect. The message is acked only after the
commit. What can never succeed goes to `<service>.inbox.dlq` at once, with the reason in headers:
a body that is not a CloudEvent, an unknown type or version, data that fails its schema, values the schema
allows but PostgreSQL cannot store (a NUL in a string, an integer beyond 64 bits). A handler
that raises is retried (republished with an attempt count in a header, then acked) up to
`max_attempts`, then dead-lettered. A database outage is not the message's fault: it is requeued
after a pause, without counting, so good messages are never dead-lettered for it.

Handlers come in two forms: a `Reaction` (the delivery and a unit of work joined to its transaction; built from
the service's event -> command table by `reactions_by_command`), or a `Handler` of the connection and the delivery.

This consumer handles each delivery in a transaction of its own. eventkit.batching's `BatchingConsumer` (what the
runtime runs) handles the deliveries in hand together in one transaction: the same effects, fewer round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from opentelemetry import context as otel_context
from pydantic import ValidationError

from eventkit import db, metrics
from eventkit.db import Conn, is_transient
from eventkit.events import Actor, CommandContext
from eventkit.inbox import record_in_inbox
from eventkit.retry import retrying
from eventkit.store import ConcurrencyError, EventStore
from eventkit.telemetry import continued_from
from eventkit.topology import dead_letter_queue, inbox_arguments, inbox_queue
from eventkit.unit_of_work import PostgresUnitOfWork, UnitOfWork
from secondopinion_contracts import BY_TYPE, CONTENT_TYPE, CloudEvent, EventData

if TYPE_CHECKING:  # compatibility: the batching hints lived here before eventkit.batching (see `__getattr__`)
    from eventkit.batching import HandledTogether as HandledTogether
    from eventkit.batching import LoadsStreams as LoadsStreams

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-eventkit-attempts"
REASON_HEADER = "x-eventkit-dead-letter-reason"
DETAIL_HEADER = "x-eventkit-dead-letter-detail"
SOURCE_QUEUE_HEADER = "x-eventkit-source-queue"


Handler = Callable[[Conn, "Delivery"], Awaitable[None]]
@dataclass(frozen=True)
class Delivery:
    envelope: CloudEvent
    data: EventData
    context: CommandContext


# A handler that works through a unit of work joined to the delivery's transaction (which holds its inbox row): its
# appends and its own statements commit with the inbox row, or not at all. See `ServiceRuntime(reactions=...)`.
Reaction = Callable[[Delivery, UnitOfWork], Awaitable[object]]


@dataclass(frozen=True)
class JoinedReaction:
    """A reaction as the consumer calls a handler: with a unit of work on the delivery's (or its batch's)
    transaction."""

    store: EventStore
    reaction: Reaction

    async def __call__(self, conn: Conn, delivery: Delivery) -> None:
        async with PostgresUnitOfWork(self.store, delivery.context, conn=conn) as uow:
            await self.reaction(delivery, uow)


def joined_to_delivery(store: EventStore, reaction: Reaction) -> Handler:
    return JoinedReaction(store, reaction)


@dataclass(frozen=True)
class CommandReaction:
    """A reaction that turns the delivery into a command (None: nothing to do for it) and runs the command's
    handler, the same handler the HTTP API's commands go to."""

    command_of: Callable[[Delivery], Any]
    handlers: Mapping[type[Any], Callable[[Any, UnitOfWork], Awaitable[object]]]

    async def __call__(self, delivery: Delivery, uow: UnitOfWork) -> None:
        command = self.command_of(delivery)
        if command is not None:
            await self.handlers[type(command)](command, uow)


def reactions_by_command(commands: Mapping[type[EventData], Callable[[Delivery], Any]],
                         handlers: Mapping[type[Any], Callable[[Any, UnitOfWork], Awaitable[object]]],
                         ) -> dict[type[EventData], Reaction]:
    """A service's reactions from its two tables: event type -> the command it becomes (None: nothing to do for
    this delivery), and command type -> its handler."""
    return {event_type: CommandReaction(command_of, handlers) for event_type, command_of in commands.items()}


class ConsumedProjection(Protocol):
    """A read model of the events consumed (reporting's log of every service's events), kept in the inbox
    transaction: applied to the deliveries recorded in the inbox for the first time, all those handled together at
    once (a batch's, or one), before any of their handlers runs. Returns the deliveries whose handlers are to run;
    the others are done (an event that was in the log already)."""

    async def apply(self, conn: Conn, deliveries: Sequence[Delivery]) -> Sequence[Delivery]: ...


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
                 transient_delay: float = 1.0, prefetch: int = 32,
                 projections: Sequence[ConsumedProjection] = ()) -> None:
        self.service = service
        self.pool = pool
        self.handlers = {event.type_name(): handler for event, handler in handlers.items()}
        self.catch_all = catch_all
        self.extra_bindings = extra_bindings
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.transient_delay = transient_delay
        self.prefetch = prefetch
        self.projections = tuple(projections)
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

    async def process(self, body: bytes) -> Outcome:
        """Handle one delivery's body; never raises for the message's own faults."""
        try:
            envelope = CloudEvent.model_validate_json(body)
        except ValidationError as error:
            return Outcome(Verdict.DEAD_LETTER, "invalid-envelope", _short(error))
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
        return await self._handle_once(handler, delivery)

    async def _handle_once(self, handler: Handler, delivery: Delivery,
                           trace_context: otel_context.Context | None = None) -> Outcome:
        try:
            # Another writer touched the same stream: decide again from fresh state.
            async for attempt in retrying(attempts=5, on=ConcurrencyError, wait=lambda _: 0):
                with attempt:
                    async with db.transaction(self.pool) as conn:
                        [outcome] = await self._handle_in(conn, [(handler, delivery, trace_context)])
                    return outcome
        except ConcurrencyError:
            pass
        return Outcome(Verdict.RETRY, "concurrency", "stream kept changing under the handler")

    async def _handle_in(self, conn: Conn,
                         work: Sequence[tuple[Handler, Delivery, otel_context.Context | None]]) -> list[Outcome]:
        """In `conn`'s transaction: record each delivery in the inbox and run the handler of each one not recorded
        before, under its own delivery's trace when one is given (a committer handles others' deliveries)."""
        first_times = await record_in_inbox(
            conn, [(str(delivery.envelope.id), delivery.envelope.type) for _, delivery, _ in work])
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
        for projection in self.projections if first_handled else ():
            going_on = {id(delivery) for delivery in await projection.apply(conn, [d for _, d, _ in first_handled])}
            first_handled = [work for work in first_handled if id(work[1]) in going_on]
        await self._run_handlers(conn, first_handled)
        return outcomes

    async def _run_handlers(self, conn: Conn,
                            work: Sequence[tuple[Handler, Delivery, otel_context.Context | None]]) -> None:
        for handler, delivery, trace_context in work:
            with _traced(trace_context):
                await handler(conn, delivery)

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
        outcome = await self.process(raw.body)
        if outcome.verdict in (Verdict.DONE, Verdict.DUPLICATE):
            await message.ack()
            return
        if outcome.verdict is Verdict.REQUEUE:
            log.warning("transient failure on %s, requeueing: %s", raw.message_id, outcome.detail,
                        extra={"case_id": outcome.case_id})
            await asyncio.sleep(self.transient_delay)
            await message.nack(requeue=True)
            return
        headers = dict(raw.headers or {})
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
                             content_type=CONTENT_TYPE, timeout=10)

    def is_attached(self) -> bool:
        """The subscriber holds a live consumer on an open channel (not just an open connection)."""
        subscriber = self.subscriber
        if subscriber is None:
            return False
        queue_obj = getattr(subscriber, "_queue_obj", None)
        tag = getattr(subscriber, "_consumer_tag", None)
        return bool(queue_obj is not None and tag and not queue_obj.channel.is_closed)


@contextlib.contextmanager
def _traced(trace_context: otel_context.Context | None) -> Iterator[None]:
    """Under a delivery's own trace, when one is given (a batch's committer handles others' deliveries)."""
    token = otel_context.attach(trace_context) if trace_context is not None else None
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)


def __getattr__(name: str) -> Any:
    # Compatibility: the batching hints lived here before eventkit.batching.
    if name in ("LoadsStreams", "HandledTogether"):
        from eventkit import batching

        return getattr(batching, name)
    raise AttributeError(name)


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
