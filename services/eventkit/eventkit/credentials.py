"""Who a service is to the broker and the database: its own broker user (named after the service), its own
PostgreSQL runtime role (`<service>_app`), the secrets of both and the access log's key, each read from
`<SERVICE>_<NAME>` so that the four services can share one environment (`make run`).

Left unset, each secret is a development default that names itself as one; APP_PROFILE=production refuses those.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource

# The settings each service has its own of: `INTAKE_RABBITMQ_PASSWORD`, `BILLING_DATABASE_USER`, ...
PER_SERVICE = ("rabbitmq_password", "database_user", "database_password", "access_log_key", "access_log_anchor")
_DEVELOPMENT_MARK = "-development-only"


def runtime_role(service: str) -> str:
    """The PostgreSQL role a service runs as (migrations run as the database's owner)."""
    return f"{service}_app"


def development_secret(owner: str, name: str) -> str:
    """The development default of `owner`'s secret `name`: known to everyone, so refused in production."""
    return f"{owner}-{name.replace('_', '-')}{_DEVELOPMENT_MARK}"


def is_development_secret(value: str) -> bool:
    return value.endswith(_DEVELOPMENT_MARK)


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (amqp:// or postgresql://) with its user and password replaced."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def user_of(url: str, default: str = "guest") -> str:
    return urlsplit(url).username or default


class ServiceEnvironment(EnvSettingsSource):
    """`<SERVICE>_<NAME>` for the settings in PER_SERVICE."""

    def __init__(self, settings_cls: type[BaseSettings], service: str) -> None:
        super().__init__(settings_cls, env_prefix=f"{service.upper()}_", case_sensitive=False)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in PER_SERVICE:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class SharedEnvironment(EnvSettingsSource):
    """The environment without the PER_SERVICE names: an unprefixed RABBITMQ_PASSWORD is no service's password."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in PER_SERVICE:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def environment_secret(owner: str, name: str) -> str:
    """`<OWNER>_<NAME>` from the environment, or its development default (for setup tools, not the services)."""
    return os.environ.get(f"{owner.upper()}_{name.upper()}") or development_secret(owner, name)
