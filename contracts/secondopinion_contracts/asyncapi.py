"""The AsyncAPI 3.0 document of the whole bus, generated from the event models.

One channel per routing key on the `secondopinion.events` topic exchange; each message's payload is
the CloudEvents envelope whose `data` is the event's JSON Schema. Written to published/asyncapi.json
by `make contracts`.
"""

from __future__ import annotations

import json
from typing import Any

from secondopinion_contracts.base import EventData
from secondopinion_contracts.envelope import CONTENT_TYPE, EXCHANGE
from secondopinion_contracts.registry import ALL_EVENTS
from secondopinion_contracts.schemas import envelope_schema, event_schema

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"


def _key(event: type[EventData]) -> str:
    return f"{event.SERVICE}.{event.NAME}.v{event.VERSION}".replace(".", "_")


def _payload(event: type[EventData]) -> dict[str, Any]:
    data = event_schema(event)
    data.pop("$schema", None)
    envelope = envelope_schema()
    envelope.pop("$schema", None)
    envelope["title"] = f"{event.NAME} v{event.VERSION} (CloudEvents envelope)"
    envelope["properties"] = {
        **envelope["properties"],
        "type": {"const": event.type_name(), "type": "string"},
        "source": {"const": f"/secondopinion/{event.SERVICE}", "type": "string"},
        "dataschema": {"const": event.schema_uri(), "type": "string"},
        "data": data,
    }
    return envelope


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event in ALL_EVENTS:
        key = _key(event)
        messages[key] = {
            "name": event.NAME,
            "title": f"{event.NAME} v{event.VERSION}",
            "summary": (event.__doc__ or "").strip().splitlines()[0] if event.__doc__ else event.NAME,
            "contentType": CONTENT_TYPE,
            "payload": _payload(event),
            "correlationId": {
                "description": "The case id; also the message's AMQP `correlation_id` property.",
                "location": "$message.payload#/correlationid",
            },
            "bindings": {"amqp": {"messageType": event.type_name(), "bindingVersion": "0.3.0"}},
        }
        channels[key] = {
            "address": event.routing_key(),
            "description": f"{event.NAME} v{event.VERSION}, published by {event.SERVICE}",
            "messages": {event.NAME: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": {
                "is": "routingKey",
                "exchange": {"name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
                "bindingVersion": "0.3.0",
            }},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"{event.SERVICE} publishes {event.NAME} v{event.VERSION} (persistent, publisher-confirmed)",
            "messages": [{"$ref": f"#/channels/{key}/messages/{event.NAME}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": "0.3.0"}},
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Second-opinion desk events",
            "version": DOCUMENT_VERSION,
            "description": (
                "Events of the second-opinion services (intake, scheduling, billing, reporting) on the topic "
                f"exchange `{EXCHANGE}`. Each AMQP body is a CloudEvents 1.0 structured JSON envelope; `id` is "
                "unique per event (deduplicate on it), `subject` and `correlationid` are the case id, `sequence` "
                "is the event's version in its stream. Bind `<service>.#` or `*.<EventName>.*` to a queue of "
                "your own."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "hospital": {"host": "rabbitmq.secondopinion.svc:5672", "protocol": "amqp", "protocolVersion": "0-9-1"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
