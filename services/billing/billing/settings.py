"""Billing's configuration: the shared settings plus fees, the hospital's registration number and the gateway."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from billing.domain import DEFAULT_FEE_SCHEDULE, FeeScheduleEntry, check_fee_schedule
from eventkit.settings import ServiceSettings, default_dsn

QUALIFIED_INVOICE_NUMBER_PATTERN = r"^T[0-9]{13}$"
# A placeholder for development only: production must be given the hospital's own number.
DEVELOPMENT_QUALIFIED_INVOICE_NUMBER = "T0000000000000"


class BillingSettings(ServiceSettings):
    service: str = "billing"
    database_url: str = Field(default_dsn("billing"), validation_alias="BILLING_DATABASE_URL")
    http_port: int = Field(8003, validation_alias="BILLING_HTTP_PORT")
    # JSON list of {"effective_from": "YYYY-MM-DD", "tax_rate_percent": 10, "fees": {"in_person": 30000, ...}}.
    # Add an entry with a later date to change the fee; never edit one already in force.
    fee_schedule: tuple[FeeScheduleEntry, ...] = Field(DEFAULT_FEE_SCHEDULE, validation_alias="BILLING_FEE_SCHEDULE")
    # The hospital's qualified-invoice issuer registration number (適格請求書発行事業者登録番号), on every receipt.
    qualified_invoice_number: str = Field(
        DEVELOPMENT_QUALIFIED_INVOICE_NUMBER, pattern=QUALIFIED_INVOICE_NUMBER_PATTERN,
        validation_alias="BILLING_QUALIFIED_INVOICE_NUMBER")
    # Intake's API: billing asks it for a case's key to print the payer's name on a receipt.
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias="BILLING_INTAKE_URL")
    # The payment API of the telemedicine platform. Empty in development: the built-in simulator is used.
    gateway_url: str = Field("", validation_alias="BILLING_GATEWAY_URL")
    gateway_api_key: SecretStr | None = Field(None, validation_alias="BILLING_GATEWAY_API_KEY")
    gateway_timeout_seconds: float = Field(10.0, validation_alias="BILLING_GATEWAY_TIMEOUT_SECONDS", gt=0)
    # Transient gateway failures (timeouts, 5xx) are retried with exponential backoff, with the same key.
    charge_max_tries: int = Field(6, validation_alias="BILLING_CHARGE_MAX_TRIES", ge=1, le=100)
    charge_backoff_seconds: float = Field(2.0, validation_alias="BILLING_CHARGE_BACKOFF_SECONDS", gt=0)
    charge_backoff_max_seconds: float = Field(120.0, validation_alias="BILLING_CHARGE_BACKOFF_MAX_SECONDS", gt=0)
    charge_sweep_seconds: float = Field(1.0, validation_alias="BILLING_CHARGE_SWEEP_SECONDS", gt=0)
    charge_concurrency: int = Field(4, validation_alias="BILLING_CHARGE_CONCURRENCY", ge=1, le=64)

    @field_validator("fee_schedule")
    @classmethod
    def _consistent_schedule(cls, entries: tuple[FeeScheduleEntry, ...]) -> tuple[FeeScheduleEntry, ...]:
        check_fee_schedule(entries)
        return entries

    @model_validator(mode="after")
    def _production_is_configured(self) -> BillingSettings:
        if self.profile == "production":
            if self.qualified_invoice_number == DEVELOPMENT_QUALIFIED_INVOICE_NUMBER:
                raise ValueError("BILLING_QUALIFIED_INVOICE_NUMBER must be set to the hospital's number in production")
            if not self.gateway_url:
                raise ValueError("BILLING_GATEWAY_URL must be set in production (the simulator is for development)")
        return self
