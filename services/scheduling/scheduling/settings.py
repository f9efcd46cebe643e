"""Scheduling's configuration: the shared settings plus holds, closures and the booking horizon."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from eventkit.settings import ServiceSettings, default_dsn

# Two days: long enough for the patient to call back with their choice, short enough that an
# unanswered proposal does not keep a physician's slot from other patients for long.
DEFAULT_HOLD_MINUTES = 48 * 60


class SchedulingSettings(ServiceSettings):
    service: str = "scheduling"
    database_url: str = Field(default_dsn("scheduling"), validation_alias="SCHEDULING_DATABASE_URL")
    http_port: int = Field(8002, validation_alias="SCHEDULING_HTTP_PORT")
    hold_minutes: int = Field(DEFAULT_HOLD_MINUTES, validation_alias="SCHEDULING_HOLD_MINUTES", ge=1,
                              le=30 * 24 * 60, description="How long proposed slots are held for a case.")
    extra_closures: tuple[date, ...] = Field(
        (), validation_alias="SCHEDULING_EXTRA_CLOSURES",
        description='Hospital closure days beyond weekends, holidays and 29 Dec-3 Jan, as a JSON list of dates.')
    # jpholiday knows the holidays announced so far (the equinox days a year ahead); slots further
    # out could land on a holiday nobody has declared yet.
    booking_horizon_days: int = Field(365, validation_alias="SCHEDULING_BOOKING_HORIZON_DAYS", ge=1, le=730)
    # Intake's API: the patient's name and postal address for the appointment slip.
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias="SCHEDULING_INTAKE_URL")
