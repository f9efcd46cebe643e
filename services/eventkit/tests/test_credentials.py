"""Who a service is to the broker and the database (settings), and whose word a delivered message carries."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from eventkit.broker_users import PUBLISHER_HEADER, publisher_of, publisher_refusal, service_user, subscriber_user
from eventkit.cli import _check_reachable
from eventkit.settings import ServiceSettings
from eventkit.testing import RABBITMQ_MANAGEMENT, RABBITMQ_PASSWORD, RABBITMQ_USER


class BillingLike(ServiceSettings):
    service: str = "billing"


def test_a_service_connects_as_its_own_users_whatever_credentials_the_urls_carry() -> None:
    settings = BillingLike(RABBITMQ_URL="amqp://guest:guest@broker:5672/desk", database_url="postgresql://owner:o@db/b")
    assert settings.rabbitmq_url == "amqp://billing:billing-rabbitmq-password-development-only@broker:5672/desk"
    assert settings.database_url == "postgresql://billing_app:billing-database-password-development-only@db/b"
    assert settings.owner_database_url == "postgresql://owner:o@db/b"


def test_each_services_secrets_are_read_under_its_own_prefix_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "meant-for-the-compose-file")
    monkeypatch.setenv("INTAKE_RABBITMQ_PASSWORD", "meant-for-intake")
    monkeypatch.setenv("BILLING_DATABASE_PASSWORD", "p@ss/word")
    settings = BillingLike(database_url="postgresql://db/b")
    assert settings.rabbitmq_password.get_secret_value() == "billing-rabbitmq-password-development-only"
    assert settings.database_url == "postgresql://billing_app:p%40ss%2Fword@db/b"


def test_a_retry_header_counts_only_on_the_consumers_own_copies() -> None:
    forged = {PUBLISHER_HEADER: "billing"}
    assert publisher_of("intake", forged, consumer_user="scheduling") == "intake"
    assert publisher_of(None, forged, consumer_user="scheduling") == ""
    assert publisher_of("scheduling", forged, consumer_user="scheduling") == "billing"  # its own retry copy
    assert publisher_of("scheduling", {}, consumer_user="scheduling") == "scheduling"


def test_only_the_owner_of_an_events_type_may_publish_it() -> None:
    paid = "secondopinion.billing.PaymentCaptured.v1"
    assert publisher_refusal(paid, "billing") is None
    for publisher in ("intake", "guest", ""):
        refusal = publisher_refusal(paid, publisher)
        assert refusal is not None
        assert "belongs to billing" in refusal


def test_a_service_may_publish_its_own_routing_keys_and_bind_others() -> None:
    intake = service_user("intake")
    assert re.match(intake.topic_write, "intake.CaseSubmitted.v1")
    assert not re.match(intake.topic_write, "billing.PaymentCaptured.v1")
    assert not re.match(intake.topic_write, "intakex.CaseSubmitted.v1")
    assert re.match(intake.configure, "intake.inbox")
    assert not re.match(intake.configure, "secondopinion.events")
    assert not re.match(intake.read, "scheduling.inbox")
    subscriber = subscriber_user()
    assert re.match(subscriber.configure, "subscriber.pharmacy")
    assert not re.match(subscriber.configure, "intake.inbox")
    assert not re.match(subscriber.write, "secondopinion.events")


async def test_check_says_how_to_fix_a_broker_user_the_broker_refuses(database: str, rabbitmq_url: str) -> None:
    wrong_password = BillingLike(RABBITMQ_URL=rabbitmq_url, database_url=database, rabbitmq_password="wrong")
    assert "RabbitMQ refused the broker user 'billing'" in (await _check_reachable(wrong_password) or "")
    settings = BillingLike(RABBITMQ_URL=rabbitmq_url, database_url=database)
    assert await _check_reachable(settings) is None
    vhost = quote(unquote(urlsplit(rabbitmq_url).path[1:]), safe="")
    async with httpx.AsyncClient(base_url=RABBITMQ_MANAGEMENT, auth=(RABBITMQ_USER, RABBITMQ_PASSWORD)) as client:
        (await client.delete(f"/api/permissions/{vhost}/billing")).raise_for_status()
    # The user exists, but not in this vhost: the broker closes the connection while it opens the vhost.
    problem = await _check_reachable(settings) or ""
    assert "RabbitMQ refused the broker user 'billing'" in problem
    assert "python -m eventkit.broker_users" in problem
