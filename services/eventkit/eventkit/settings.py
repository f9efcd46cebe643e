"""Configuration from the environment, shared by every service: the same names in each (RABBITMQ_URL, APP_PROFILE,
...), without a service prefix except the database's own `<SERVICE>_DATABASE_URL` (docs/architecture.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


def default_dsn(service: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{service}"


class ServiceSettings(BaseSettings):
    """Settings every service has. A service subclasses it and sets SERVICE and DEFAULT_PORT.

    The database DSN is read from `<SERVICE>_DATABASE_URL` (e.g. INTAKE_DATABASE_URL).
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    service: str = "service"
    rabbitmq_url: str = Field(DEFAULT_RABBITMQ_URL, validation_alias="RABBITMQ_URL")
    database_url: str = ""
    http_host: str = Field("127.0.0.1", validation_alias="HTTP_HOST")
    http_port: int = 0
    profile: str = Field("development", validation_alias="APP_PROFILE", pattern="^(development|production)$")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    consumer_prefetch: int = Field(32, validation_alias="CONSUMER_PREFETCH", ge=1, le=1000)
    # Deliveries in hand together are handled in one transaction, at most this many (1: each in its own).
    consumer_batch_max: int = Field(32, validation_alias="CONSUMER_BATCH_MAX", ge=1, le=1000)
    # Appends made while others commit are written together, at most this many (1: each in its own transaction).
    append_batch_max: int = Field(32, validation_alias="APPEND_BATCH_MAX", ge=1, le=1000)
    consumer_max_attempts: int = Field(5, validation_alias="CONSUMER_MAX_ATTEMPTS", ge=1, le=100)
    outbox_batch_size: int = Field(500, validation_alias="OUTBOX_BATCH_SIZE", ge=1, le=10_000)
    outbox_sweep_seconds: float = Field(1.0, validation_alias="OUTBOX_SWEEP_SECONDS", gt=0)
    db_pool_max: int = Field(10, validation_alias="DB_POOL_MAX", ge=2, le=200)


_DEFAULT_PASSWORDS = ("guest", "postgres", "password", "changeme", "secret", "")


def production_problems(settings: ServiceSettings, uses_development_key: bool) -> list[str]:
    """Why this configuration must not run with APP_PROFILE=production (empty when it may)."""
    if settings.profile != "production":
        return []
    problems = []
    if uses_development_key:
        problems.append("JWT verification would use the repository's development key: set JWT_JWKS_URL")
    for name, url in (("RABBITMQ_URL", settings.rabbitmq_url), ("database URL", settings.database_url)):
        password = _password_of(url)
        if password is None or password in _DEFAULT_PASSWORDS:
            problems.append(f"{name} has no password or a default one")
    return problems


def _password_of(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).password
