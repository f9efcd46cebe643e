"""Who may do what on the bus. Each service is a broker user of its own, named after it: it publishes only its
own routing keys (a topic permission on the events exchange) and configures and reads only its own queues. Other
hospital systems share the `subscriber` user, which may only declare, bind and read queues named `subscriber.*`.
Every message carries the AMQP `user_id` (RabbitMQ refuses one that is not the connection's user), and consumers
dead-letter an event whose publisher is not the service its type belongs to (`publisher_refusal`).

`python -m eventkit.broker_users` creates the users, their permissions and the exchanges in a vhost through the
management API (as an administrator); `make run` and the tests' vhosts use it, compose runs it once before the
services start, and Kubernetes declares the same rules as Messaging Topology Operator resources.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import httpx

from eventkit.credentials import development_secret, environment_secret, is_development_secret, with_credentials
from eventkit.topology import UNROUTED_EXCHANGE, dead_letter_queue, declare_exchange, inbox_queue
from secondopinion_contracts import BY_TYPE, EXCHANGE

SERVICES = ("intake", "scheduling", "billing", "reporting")
SUBSCRIBER = "subscriber"
SUBSCRIBER_QUEUE_PREFIX = "subscriber."
# The AMQP name permissions use for the default exchange: consumers send retries and dead letters through it.
DEFAULT_EXCHANGE = "amq.default"
# On a retried copy the consumer sends to its own inbox (with its own user_id): who published the original.
PUBLISHER_HEADER = "x-eventkit-publisher"
UNAUTHORISED_PUBLISHER = "unauthorised-publisher"


@dataclass(frozen=True)
class BrokerUser:
    """A broker user's permissions in the vhost (regular expressions, as RabbitMQ takes them) and its topic
    permissions on the events exchange (which routing keys it may publish, and bind its queues with)."""

    name: str
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str = ".*"

    def permissions(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}

    def topic_permissions(self) -> dict[str, str]:
        return {"exchange": EXCHANGE, "write": self.topic_write, "read": self.topic_read}


def _one_of(*names: str) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def service_user(service: str) -> BrokerUser:
    own_queues = (inbox_queue(service), dead_letter_queue(service))
    return BrokerUser(
        name=service,
        configure=_one_of(*own_queues),
        # The events exchange to publish to; the default exchange for retries and dead letters; its own queues to
        # bind them; the parking exchange an unbound routing key falls through to.
        write=_one_of(*own_queues, EXCHANGE, DEFAULT_EXCHANGE, UNROUTED_EXCHANGE),
        read=_one_of(*own_queues, EXCHANGE),
        topic_write=f"^{re.escape(service)}\\.",
    )


def subscriber_user() -> BrokerUser:
    own = f"^{re.escape(SUBSCRIBER_QUEUE_PREFIX)}.+"
    return BrokerUser(name=SUBSCRIBER, configure=own, write=own, read=f"{own}|{_one_of(EXCHANGE)}", topic_write="^$")


def users(services: Sequence[str] = SERVICES) -> list[BrokerUser]:
    return [*(service_user(service) for service in services), subscriber_user()]


def owner_of(event_type: str) -> str | None:
    """The service an event type belongs to (the only one that may publish it)."""
    event = BY_TYPE.get(event_type)
    return event.SERVICE if event is not None else None


def publisher_of(user_id: str | None, headers: Mapping[str, Any], consumer_user: str | None) -> str:
    """Who published a delivered message, as the broker vouches for it ("" when it carries no user_id). A copy the
    consumer sent to its own inbox itself (a retry) names the original's publisher in a header: only the consumer's
    own user can send a message with that user_id, so the header is its word."""
    if user_id and consumer_user and user_id == consumer_user:
        original = headers.get(PUBLISHER_HEADER)
        return original if isinstance(original, str) and original else user_id
    return user_id or ""


def publisher_refusal(event_type: str, publisher: str) -> str | None:
    """Why an event of `event_type` from `publisher` must not be trusted, or None when its owner published it."""
    owner = owner_of(event_type)
    if owner is not None and publisher == owner:
        return None
    who = f"user {publisher!r}" if publisher else "a message without user_id"
    return f"{event_type} belongs to {owner}; it was published by {who}"


async def set_up(management_url: str, admin: tuple[str, str], vhost: str, passwords: Mapping[str, str],
                 amqp_admin_url: str | None = None, services: Sequence[str] = SERVICES) -> None:
    """Create (or update) every user with its password and permissions in `vhost`, and the exchanges the services
    publish to (they may not declare them themselves). Idempotent."""
    encoded = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=management_url, auth=admin, timeout=30) as client:
        for user in users(services):
            name = quote(user.name, safe="")
            responses = [
                await client.put(f"/api/users/{name}", json={"password": passwords[user.name], "tags": ""}),
                await client.put(f"/api/permissions/{encoded}/{name}", json=user.permissions()),
                await client.put(f"/api/topic-permissions/{encoded}/{name}", json=user.topic_permissions()),
            ]
            for response in responses:
                response.raise_for_status()
    if amqp_admin_url is not None:
        connection = await aio_pika.connect(amqp_admin_url, timeout=10)
        try:
            await declare_exchange(await connection.channel())
        finally:
            await connection.close()


def passwords_from_environment(services: Sequence[str] = SERVICES) -> dict[str, str]:
    """Each user's password from `<USER>_RABBITMQ_PASSWORD` (what the service itself reads), else its development
    default."""
    return {user: environment_secret(user, "rabbitmq_password") for user in (*services, SUBSCRIBER)}


def development_passwords(services: Sequence[str] = SERVICES) -> dict[str, str]:
    return {user: development_secret(user, "rabbitmq_password") for user in (*services, SUBSCRIBER)}


async def set_up_from_environment() -> str:
    """`set_up` as configured by the environment: RABBITMQ_ADMIN_URL (an administrator's AMQP URL, its path the
    vhost), RABBITMQ_MANAGEMENT_URL, and each user's `<USER>_RABBITMQ_PASSWORD`. Returns the vhost."""
    admin_url = os.environ.get("RABBITMQ_ADMIN_URL", "amqp://guest:guest@127.0.0.1:5672/")
    parts = urlsplit(admin_url)
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL", f"http://{parts.hostname}:15672")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    passwords = passwords_from_environment()
    if os.environ.get("APP_PROFILE") == "production":
        unset = [user for user, password in passwords.items() if is_development_secret(password)]
        if unset:
            raise SystemExit(f"refusing the development passwords of {', '.join(unset)} in production: set "
                             + ", ".join(f"{user.upper()}_RABBITMQ_PASSWORD" for user in unset))
    await set_up(management, (parts.username or "guest", unquote(parts.password or "guest")), vhost, passwords,
                 amqp_admin_url=admin_url)
    return vhost


def main() -> None:
    try:
        vhost = asyncio.run(set_up_from_environment())
    except (httpx.HTTPError, OSError, aio_pika.exceptions.AMQPError) as error:
        raise SystemExit(f"could not set up the broker's users ({error.__class__.__name__}: {error}); the management "
                         "API must be reachable: rabbitmq-plugins enable rabbitmq_management") from None
    print(f"broker users {', '.join((*SERVICES, SUBSCRIBER))} set up in vhost {vhost!r}", file=sys.stderr)


def service_url(broker_url: str, service: str) -> str:
    """`broker_url` as `service` connects to it with its development password (tests and tools)."""
    return with_credentials(broker_url, service, environment_secret(service, "rabbitmq_password"))


if __name__ == "__main__":
    main()
