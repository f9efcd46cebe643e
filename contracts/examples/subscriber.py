"""A subscriber of the second-opinion events that uses nothing of this project's Python code.

It shows what any system (in any language) does: declare a durable queue of its own, bind it to the
`secondopinion.events` topic exchange, read each AMQP body as a CloudEvents JSON envelope, skip an `id`
it has already processed, validate `data` against the published JSON Schema of the envelope's `type`,
and acknowledge only after its own work is stored.

    python subscriber.py --url amqp://guest:guest@127.0.0.1:5672/ --binding 'intake.#' \
        --schemas ../secondopinion_contracts/published --state seen.sqlite3

Needs `aio-pika` and `jsonschema` (pip install aio-pika jsonschema). Prints one JSON line per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aio_pika
import jsonschema

EXCHANGE = "secondopinion.events"


def schema_for(schemas: Path, event_type: str) -> dict[str, Any] | None:
    # type = secondopinion.<service>.<EventName>.v<N>  ->  <service>/<EventName>.v<N>.json
    _, service, name, version = event_type.split(".")
    path = schemas / service / f"{name}.{version}.json"
    return json.loads(path.read_text()) if path.exists() else None


async def run(url: str, queue_name: str, bindings: list[str], schemas: Path, state: Path, limit: int | None) -> None:
    seen = sqlite3.connect(state)
    seen.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY)")
    connection = await aio_pika.connect_robust(url)
    handled = 0
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, passive=True)
        queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        for binding in bindings:
            await queue.bind(exchange, routing_key=binding)
        async with queue.iterator() as messages:
            async for message in messages:
                outcome = handle(message.body, seen, schemas)
                print(json.dumps(outcome), flush=True)
                if outcome["outcome"] == "invalid":
                    await message.reject(requeue=False)  # give it to your own dead-letter queue
                else:
                    await message.ack()
                handled += 1
                if limit is not None and handled >= limit:
                    return


def handle(body: bytes, seen: sqlite3.Connection, schemas: Path) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
        event_id, event_type, data = envelope["id"], envelope["type"], envelope["data"]
    except (ValueError, KeyError, TypeError) as error:
        return {"outcome": "invalid", "error": f"not a CloudEvents envelope: {error}"}
    if seen.execute("SELECT 1 FROM processed WHERE event_id = ?", (event_id,)).fetchone():
        return {"outcome": "duplicate", "id": event_id, "type": event_type}
    schema = schema_for(schemas, event_type)
    if schema is None:
        return {"outcome": "invalid", "id": event_id, "error": f"no schema for {event_type}"}
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as error:
        return {"outcome": "invalid", "id": event_id, "error": error.message}
    with seen:  # your own effect and the processed id in one transaction, then ack
        seen.execute("INSERT INTO processed (event_id) VALUES (?)", (event_id,))
    return {"outcome": "processed", "id": event_id, "type": event_type, "case": envelope.get("subject"),
            "sequence": envelope.get("sequence")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="example.subscriber")
    parser.add_argument("--binding", action="append", default=None, help="routing-key pattern; repeatable")
    parser.add_argument("--schemas", type=Path, default=Path(__file__).parent.parent / "secondopinion_contracts"
                        / "published")
    parser.add_argument("--state", type=Path, default=Path("processed-events.sqlite3"))
    parser.add_argument("--limit", type=int, default=None, help="stop after this many messages")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.url, args.queue, args.binding or ["#"], args.schemas, args.state, args.limit))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
