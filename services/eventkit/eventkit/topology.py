"""The bus's shape: one topic exchange, and per service a quorum inbox queue with its dead-letter queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from secondopinion_contracts import EXCHANGE

UNROUTED_EXCHANGE = "secondopinion.unrouted"
UNROUTED_QUEUE = "secondopinion.unrouted"
# Events no subscriber was bound for are parked here (bounded), not dropped without trace.
UNROUTED_MAX_LENGTH = 100_000
# A backstop only: the application dead-letters after its own attempt count long before this.
BROKER_DELIVERY_LIMIT = 50


def inbox_queue(service: str) -> str:
    return f"{service}.inbox"


def dead_letter_queue(service: str) -> str:
    return f"{service}.inbox.dlq"


def inbox_arguments(service: str) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(service),
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
    }


async def declare_exchange(channel: AbstractChannel, name: str = EXCHANGE, *,
                           passive: bool = False) -> AbstractExchange:
    """The events exchange and its parking place for unrouted events. Services find it (`passive`): their broker
    users may not configure it (eventkit.broker_users sets it up)."""
    if passive:
        return await channel.declare_exchange(name, passive=True)
    unrouted = await channel.declare_exchange(UNROUTED_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    parking = await channel.declare_queue(
        UNROUTED_QUEUE, durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": UNROUTED_MAX_LENGTH, "x-overflow": "drop-head"},
    )
    await parking.bind(unrouted)
    return await channel.declare_exchange(
        name, aio_pika.ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED_EXCHANGE}
    )


async def declare_inbox(channel: AbstractChannel, service: str, bindings: Sequence[str],
                        exchange_name: str = EXCHANGE) -> AbstractQueue:
    """Declare (idempotently) the service's inbox, its dead-letter queue and the inbox's bindings."""
    exchange = await declare_exchange(channel, exchange_name, passive=True)
    await channel.declare_queue(dead_letter_queue(service), durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(inbox_queue(service), durable=True, arguments=inbox_arguments(service))
    for binding in bindings:
        await queue.bind(exchange, routing_key=binding)
    return queue
