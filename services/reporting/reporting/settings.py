"""Reporting's configuration: the shared settings, intake's API, and where the desk console is."""

from __future__ import annotations

from pydantic import Field

from eventkit.settings import ServiceSettings, default_dsn


class ReportingSettings(ServiceSettings):
    service: str = "reporting"
    database_url: str = Field(default_dsn("reporting"), validation_alias="REPORTING_DATABASE_URL")
    http_port: int = Field(8004, validation_alias="REPORTING_HTTP_PORT")
    # Intake's API: the names and addresses printed on the report letter.
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias="REPORTING_INTAKE_URL")
    # The desk console, where /dashboard (the board's old page) now leads.
    console_url: str = Field("http://127.0.0.1:8000", validation_alias="REPORTING_CONSOLE_URL")
