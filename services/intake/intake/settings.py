"""Intake's configuration: the shared settings plus the department catalogue."""

from __future__ import annotations

from pydantic import Field

from eventkit.settings import ServiceSettings, default_dsn
from eventkit.staff import DEFAULT_DEPARTMENTS


class IntakeSettings(ServiceSettings):
    service: str = "intake"
    database_url: str = Field(default_dsn("intake"), validation_alias="INTAKE_DATABASE_URL")
    http_port: int = Field(8001, validation_alias="INTAKE_HTTP_PORT")
    retention_years: int = Field(5, validation_alias="INTAKE_RETENTION_YEARS", ge=1, le=100)
    departments: tuple[str, ...] = Field(DEFAULT_DEPARTMENTS, validation_alias="INTAKE_DEPARTMENTS")
