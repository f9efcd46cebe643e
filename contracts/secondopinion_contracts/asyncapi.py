"""The AsyncAPI 3.0 document of the whole bus, generated from the event models.

One channel per routing key on the `secondopinion.events` topic exchange; each message's payload is
the CloudEvents envelope whose `data` is the event's JSON Schema. The schemas' shared definitions
(`$defs`: codes, nested objects) move to `components/schemas`, where the payloads' `$ref`s point, so
that the document resolves by itself. Written to published/asyncapi.json by `make contracts`.
"""

from __future__ import annotations

import json
from typing import Any

from secondopinion_contracts.base import EventData
from secondopinion_contracts.envelope import CONTENT_TYPE, EXCHANGE
from secondopinion_contracts.examples import EXAMPLES
from secondopinion_contracts.registry import ALL_EVENTS
from secondopinion_contracts.schemas import envelope_schema, event_schema

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.3.0"
SCHEMAS = "#/components/schemas/"

# Where the broker is. The port is AMQP's; TLS (5671) where the deployment terminates it.
SERVERS: dict[str, dict[str, Any]] = {
    "production": {
        "host": "secondopinion-rabbitmq.secondopinion.svc.cluster.local:5672",
        "title": "Kubernetes, production",
        "description": "The RabbitMQ cluster of the production overlay (namespace `secondopinion`), for systems in "
                       "the cluster whose namespace the broker's NetworkPolicy admits.",
    },
    "development": {
        "host": "secondopinion-rabbitmq.secondopinion-dev.svc.cluster.local:5672",
        "title": "Kubernetes, development",
        "description": "The RabbitMQ cluster of the development overlay (namespace `secondopinion-dev`).",
    },
    "compose": {
        "host": "rabbitmq:5672",
        "title": "Docker Compose, inside the stack's network",
        "description": "The compose stack's broker for a container on its network; from the host it is "
                       "`127.0.0.1:15673` (RABBITMQ_HOST_PORT).",
    },
}


def _key(event: type[EventData]) -> str:
    return f"{event.SERVICE}.{event.NAME}.v{event.VERSION}".replace(".", "_")


def _pointing_at_components(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: (SCHEMAS + value.rsplit("/", 1)[-1] if key == "$ref" else _pointing_at_components(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_pointing_at_components(item) for item in node]
    return node


def _payload(event: type[EventData], shared: dict[str, Any]) -> dict[str, Any]:
    data = event_schema(event)
    for keyword in ("$schema", "$id"):  # an `$id` inside the document would move the base of its `$ref`s
        data.pop(keyword)
    for name, definition in data.pop("$defs", {}).items():
        definition = _pointing_at_components(definition)
        if shared.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name}")
    envelope = envelope_schema()
    envelope.pop("$schema")
    envelope["title"] = f"{event.NAME} v{event.VERSION} (CloudEvents envelope)"
    envelope["properties"] = {
        **envelope["properties"],
        "type": {"const": event.type_name(), "type": "string", "description": "The event's type and version."},
        "source": {"const": f"/secondopinion/{event.SERVICE}", "type": "string",
                   "description": "The service that owns and published the event."},
        "dataschema": {"const": event.schema_uri(), "type": "string",
                       "description": "The `$id` of the JSON Schema of `data`."},
        "data": _pointing_at_components(data),
    }
    return envelope


def _message(event: type[EventData], shared: dict[str, Any]) -> dict[str, Any]:
    example = json.loads(EXAMPLES[event].to_json_bytes())
    message: dict[str, Any] = {
        "name": event.NAME,
        "title": f"{event.NAME} v{event.VERSION}",
        "summary": (event.__doc__ or event.NAME).strip().splitlines()[0],
        "contentType": CONTENT_TYPE,
        "payload": _payload(event, shared),
        "correlationId": {
            "description": "The case id; also the message's AMQP `correlation_id` property.",
            "location": "$message.payload#/correlationid",
        },
        "examples": [{"name": f"{event.NAME}_v{event.VERSION}", "summary": "As the service publishes it",
                      "payload": example}],
        "bindings": {"amqp": {"messageType": event.type_name(), "bindingVersion": "0.3.0"}},
    }
    if event.SUNSET:
        message["x-sunset"] = event.SUNSET
        message["description"] = (f"Deprecated: published beside its successor (`supersededby`) until {event.SUNSET}. "
                                  "Bind one of the two versions.")
    return message


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for event in ALL_EVENTS:
        key = _key(event)
        messages[key] = _message(event, shared)
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
            "summary": f"{event.SERVICE} publishes {event.NAME} v{event.VERSION}",
            "description": "Persistent and publisher-confirmed, sent once the event is committed (transactional "
                           "outbox); at least once: deduplicate on `id`.",
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
                "unique per event (deduplicate on it), `subject` and `correlationid` are the case id, "
                "`streamversion` is the event's version in its stream. Bind `<service>.#` or `*.<EventName>.*` "
                "to a queue of your own. Missed events: `GET /events` of each service (docs/subscribing.md)."
            ),
            "contact": {"name": "Second-opinion desk, Regional Medical Liaison Center",
                        "email": "secondopinion-desk@example-hospital.jp"},
            "license": {"name": "Proprietary: for the hospital's own systems"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            name: {**server, "protocol": "amqp", "protocolVersion": "0.9.1",
                   "security": [{"$ref": "#/components/securitySchemes/brokerUser"}]}
            for name, server in SERVERS.items()
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": dict(sorted(shared.items())),
            "securitySchemes": {"brokerUser": {
                "type": "userPassword",
                "description": "A RabbitMQ user and password (SASL PLAIN) of your own, with read access to "
                               "`secondopinion.events` and configure/write/read on your own queues.",
            }},
        },
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
