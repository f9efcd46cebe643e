"""The desk's configuration: where the four services answer, how staff sign in, and how long a session lasts."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit import credentials
from eventkit.settings import default_dsn

# Development and tests only: sessions then survive a restart without configuration.
DEVELOPMENT_SESSION_KEY = hashlib.sha256(b"secondopinion desk: development session key").digest()

DEFAULT_SERVICE_URLS = {
    "intake": "http://127.0.0.1:8001", "scheduling": "http://127.0.0.1:8002",
    "billing": "http://127.0.0.1:8003", "reporting": "http://127.0.0.1:8004",
}


class DeskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    service: str = "desk"
    # DESK_DATABASE_URL as given is the owner's (migrations); `database_url` becomes the runtime role's, as for the
    # four services (eventkit.db_roles): desk_app, no superuser, owning nothing.
    database_url: str = Field(default_dsn("desk"), validation_alias="DESK_DATABASE_URL")
    owner_database_url: str = ""
    database_user: str = Field("", validation_alias="DESK_DATABASE_USER")
    database_password: SecretStr = Field(SecretStr(""), validation_alias="DESK_DATABASE_PASSWORD")
    # Off (Kubernetes): the migration Job migrated as the owner; DESK_DATABASE_URL then needs no owner's password.
    migrate_on_start: bool = Field(True, validation_alias="MIGRATE_ON_START")
    http_host: str = Field("127.0.0.1", validation_alias="HTTP_HOST")
    http_port: int = Field(8000, validation_alias="DESK_HTTP_PORT")
    profile: str = Field("development", validation_alias="APP_PROFILE", pattern="^(development|production)$")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    db_pool_max: int = Field(10, validation_alias="DB_POOL_MAX", ge=2, le=200)

    intake_url: str = Field(DEFAULT_SERVICE_URLS["intake"], validation_alias="DESK_INTAKE_URL")
    scheduling_url: str = Field(DEFAULT_SERVICE_URLS["scheduling"], validation_alias="DESK_SCHEDULING_URL")
    billing_url: str = Field(DEFAULT_SERVICE_URLS["billing"], validation_alias="DESK_BILLING_URL")
    reporting_url: str = Field(DEFAULT_SERVICE_URLS["reporting"], validation_alias="DESK_REPORTING_URL")
    service_timeout_seconds: float = Field(10.0, validation_alias="DESK_SERVICE_TIMEOUT_SECONDS", gt=0, le=60)
    # How long the desk keeps intake's department catalogue (GET /departments) before asking again, in seconds.
    departments_cache_seconds: float = Field(300.0, validation_alias="DESK_DEPARTMENTS_CACHE_SECONDS", ge=0,
                                             le=24 * 3600)

    # The base URL staff open (the OIDC redirect URI is derived from it).
    public_url: str = Field("http://127.0.0.1:8000", validation_alias="DESK_PUBLIC_URL")
    idle_timeout_minutes: int = Field(30, validation_alias="DESK_IDLE_TIMEOUT_MINUTES", ge=1, le=24 * 60)
    # How long before its expiry an access token is renewed with the refresh token (production sign-in).
    token_renew_before_seconds: int = Field(60, validation_alias="DESK_TOKEN_RENEW_BEFORE_SECONDS", ge=0, le=3600)
    # How often a page showing a pending step asks again, in seconds.
    poll_seconds: float = Field(2.0, validation_alias="DESK_POLL_SECONDS", gt=0, le=60)

    # Production sign-in: OpenID Connect authorization code flow with PKCE.
    oidc_issuer: str | None = Field(None, validation_alias="OIDC_ISSUER")
    oidc_client_id: str | None = Field(None, validation_alias="OIDC_CLIENT_ID")
    oidc_client_secret: str | None = Field(None, validation_alias="OIDC_CLIENT_SECRET")
    oidc_scope: str = Field("openid profile", validation_alias="OIDC_SCOPE")
    oidc_role_claim: str = Field("roles", validation_alias="OIDC_ROLE_CLAIM")
    oidc_name_claim: str = Field("name", validation_alias="OIDC_NAME_CLAIM")
    # The API the services verify the access token for (the resource indicator sent to the provider).
    oidc_resource: str | None = Field(None, validation_alias="OIDC_RESOURCE")
    # The key the staff's tokens are sealed with in the session table (base64 of 32 bytes); every replica has the
    # same. Without it, development uses a fixed key that the production profile refuses.
    session_key: str | None = Field(None, validation_alias="DESK_SESSION_KEY")
    # The hospital's staff directory (eventkit.staff, a JSON list of subject, staff_id, name...): where it lists a
    # member, pages show that name for their staff id before the one they signed in with.
    staff_directory_file: Path | None = Field(None, validation_alias="STAFF_DIRECTORY_FILE")
    # Development sign-in (pick a name and roles; the development key signs the token).
    development_sign_in: bool = Field(False, validation_alias="DESK_DEVELOPMENT_SIGN_IN")

    @model_validator(mode="after")
    def _connect_as_the_runtime_role(self) -> DeskSettings:
        self.owner_database_url = self.owner_database_url or self.database_url
        self.database_user = self.database_user or credentials.runtime_role(self.service)
        if not self.database_password.get_secret_value():
            self.database_password = SecretStr(credentials.development_secret(self.service, "database_password"))
        self.database_url = credentials.with_credentials(self.owner_database_url, self.database_user,
                                                         self.database_password.get_secret_value())
        return self

    @property
    def service_urls(self) -> dict[str, str]:
        return {"intake": self.intake_url, "scheduling": self.scheduling_url, "billing": self.billing_url,
                "reporting": self.reporting_url}

    @property
    def session_key_bytes(self) -> bytes:
        if not self.session_key:
            return DEVELOPMENT_SESSION_KEY
        key = base64.b64decode(self.session_key)
        if len(key) != 32:
            raise ValueError("DESK_SESSION_KEY must be base64 of 32 bytes (e.g. `openssl rand -base64 32`)")
        return key

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def development_sign_in_enabled(self) -> bool:
        return self.profile == "development" and (self.development_sign_in or not self.oidc_configured)


def production_problems(settings: DeskSettings) -> list[str]:
    """Why this configuration must not serve staff with APP_PROFILE=production (empty when it may)."""
    if settings.profile != "production":
        return []
    problems = []
    if settings.development_sign_in:
        problems.append("the development sign-in (DESK_DEVELOPMENT_SIGN_IN) signs tokens with the repository's key")
    if not settings.oidc_configured or not settings.oidc_client_secret:
        problems.append("OpenID Connect is not configured: set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
    if settings.session_key_bytes == DEVELOPMENT_SESSION_KEY:
        problems.append("DESK_SESSION_KEY is not set: the staff's tokens would be sealed with the development key")
    if not settings.public_url.startswith("https://"):
        problems.append("DESK_PUBLIC_URL must be an https:// address (the session cookie is Secure)")
    password = settings.database_password.get_secret_value()
    if credentials.is_development_secret(password) or password in ("postgres", "password", "changeme", "secret"):
        problems.append("DESK_DATABASE_PASSWORD (the desk_app role's) is not set or a default one")
    return problems
