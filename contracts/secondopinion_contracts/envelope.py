"""The CloudEvents 1.0 structured-mode JSON envelope every event travels in.

Modelled directly in pydantic: the envelope is small and stable, while the `cloudevents` package
changes its API between releases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION = "1.0"
EXCHANGE = "secondopinion.events"
SOURCE_PREFIX = "/secondopinion/"
TYPE_PREFIX = "secondopinion."
SCHEMA_BASE_URI = "https://schemas.secondopinion.example-hospital.jp/events/"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode, with this bus's extension attributes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = Field(SPECVERSION, pattern=r"^1\.0$")
    id: UUID = Field(description="Unique per event; consumers deduplicate on it.")
    source: str = Field(pattern=r"^/secondopinion/[a-z]+$", description="/secondopinion/<service>")
    type: str = Field(
        pattern=r"^secondopinion\.[a-z]+\.[A-Z][A-Za-z]+\.v[0-9]+$",
        description="secondopinion.<service>.<EventName>.v<N>",
    )
    subject: str = Field(min_length=1, description="The case id the event is about.")
    time: datetime = Field(description="When the event was recorded (UTC).")
    datacontenttype: str = "application/json"
    dataschema: str
    data: dict[str, Any]
    sequence: int = Field(ge=1, description="Version of the event in its stream.")
    correlationid: str = Field(min_length=1, description="The case id, for correlating a flow.")
    causationid: str | None = Field(None, description="The event or command that caused this event.")
    traceparent: str | None = Field(None, description="W3C trace context of the writer.")
    supersededby: str | None = Field(
        None, description="Set on a deprecated version published beside its successor: the successor's type.")
    actorid: str | None = Field(None, description="Staff id of who issued the command, or the service.")
    actorrole: str | None = Field(None, description="coordinator, physician, cashier, auditor or system.")

    @field_validator("time")
    @classmethod
    def _must_be_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (UTC)")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00: not a ValueError, so pydantic would not catch it
            raise ValueError("time is out of range once converted to UTC") from None

    @property
    def service(self) -> str:
        return self.type.split(".")[1]

    @property
    def event_name(self) -> str:
        return self.type.split(".")[2]

    @property
    def event_version(self) -> int:
        return int(self.type.split(".")[3][1:])

    @property
    def routing_key(self) -> str:
        return self.type.removeprefix(TYPE_PREFIX)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def event_type(service: str, name: str, version: int) -> str:
    return f"{TYPE_PREFIX}{service}.{name}.v{version}"


def routing_key(service: str, name: str, version: int) -> str:
    return f"{service}.{name}.v{version}"


def schema_uri(service: str, name: str, version: int) -> str:
    return f"{SCHEMA_BASE_URI}{service}/{name}.v{version}.json"
