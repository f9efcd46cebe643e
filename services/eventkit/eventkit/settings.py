"""Configuration from the environment, shared by every service: the same names in each (RABBITMQ_URL, APP_PROFILE,
...), without a service prefix except what is each service's own: `<SERVICE>_DATABASE_URL` (docs/architecture.md)
and the credentials of eventkit.credentials (`<SERVICE>_RABBITMQ_PASSWORD`, ...)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from eventkit import credentials

# Where the broker is; each service connects to it as its own user (credentials in this URL are replaced).
DEFAULT_RABBITMQ_URL = "amqp://127.0.0.1:5672/"


def default_dsn(service: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{service}"


class ServiceSettings(BaseSettings):
    """Settings every service has. A service subclasses it and sets SERVICE and DEFAULT_PORT.

    The database DSN is read from `<SERVICE>_DATABASE_URL` (e.g. INTAKE_DATABASE_URL): the database, as the role
    that owns it (migrations). The service itself connects as its own runtime role and broker user, whose
    passwords (and the access log's key) are read from `<SERVICE>_DATABASE_PASSWORD`, `<SERVICE>_RABBITMQ_PASSWORD`,
    `<SERVICE>_ACCESS_LOG_KEY` (eventkit.credentials has the development defaults production refuses).
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
    # Per service, read from `<SERVICE>_<NAME>` (see credentials.PER_SERVICE); empty: the development default.
    rabbitmq_password: SecretStr = SecretStr("")
    database_user: str = ""
    database_password: SecretStr = SecretStr("")
    access_log_key: SecretStr = SecretStr("")
    # A file the access log's head is written to after every entry (outside the database); empty: logs only.
    access_log_anchor: str = ""
    # The owner's DSN (`<SERVICE>_DATABASE_URL` as given): migrations. `database_url` becomes the runtime role's.
    owner_database_url: str = ""
    # Off: the service does not migrate when it starts (a migration job did, as the owner), and needs no owner's
    # credentials: `<SERVICE>_DATABASE_URL` may then name only the host and database.
    migrate_on_start: bool = Field(True, validation_alias="MIGRATE_ON_START")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        service = str(cls.model_fields["service"].default)
        return (init_settings, credentials.ServiceEnvironment(settings_cls, service),
                credentials.SharedEnvironment(settings_cls), dotenv_settings, file_secret_settings)

    def secrets_of_its_own(self) -> dict[str, SecretStr]:
        """A service's further secrets, by the variable that sets each (production refuses their development
        defaults, as it refuses the shared ones'); none here."""
        return {}

    @model_validator(mode="after")
    def _connect_as_the_service(self) -> ServiceSettings:
        """The broker URL and the DSN the service uses carry its own user's credentials, never the owner's."""
        if not self.owner_database_url:
            self.owner_database_url = self.database_url
        self.database_user = self.database_user or credentials.runtime_role(self.service)
        for name in ("rabbitmq_password", "database_password", "access_log_key"):
            if not getattr(self, name).get_secret_value():
                setattr(self, name, SecretStr(credentials.development_secret(self.service, name)))
        self.rabbitmq_url = credentials.with_credentials(self.rabbitmq_url, self.service,
                                                         self.rabbitmq_password.get_secret_value())
        if self.database_url:
            self.database_url = credentials.with_credentials(self.owner_database_url, self.database_user,
                                                             self.database_password.get_secret_value())
        return self


_DEFAULT_PASSWORDS = ("guest", "postgres", "password", "changeme", "secret", "")


def production_problems(settings: ServiceSettings, uses_development_key: bool) -> list[str]:
    """Why this configuration must not run with APP_PROFILE=production (empty when it may)."""
    if settings.profile != "production":
        return []
    problems = []
    if uses_development_key:
        problems.append("JWT verification would use the repository's development key: set JWT_JWKS_URL")
    if _uses_development_key_encryption_key():
        problems.append("CASE_KEY_ENCRYPTION_KEY is the repository's development key: set a secret of 32 bytes")
    prefix = settings.service.upper()
    for name, secret in ((f"{prefix}_RABBITMQ_PASSWORD", settings.rabbitmq_password),
                         (f"{prefix}_DATABASE_PASSWORD", settings.database_password),
                         (f"{prefix}_ACCESS_LOG_KEY", settings.access_log_key),
                         *settings.secrets_of_its_own().items()):
        value = secret.get_secret_value()
        if value in _DEFAULT_PASSWORDS or credentials.is_development_secret(value):
            problems.append(f"{name} is not set (the development default or a well-known value)")
    return problems


def _uses_development_key_encryption_key() -> bool:
    from eventkit.crypto import DEVELOPMENT_KEY_ENCRYPTION_KEY, KeySettings

    return KeySettings().case_key_encryption_key == DEVELOPMENT_KEY_ENCRYPTION_KEY
