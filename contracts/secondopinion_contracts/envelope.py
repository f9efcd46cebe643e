"""The CloudEvents 1.0 structured-mode JSON envelope every event travels in.

Modelled directly in pydantic: the envelope is small and stable, while the `cloudevents` package
changes its API between releases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION: Literal["1.0"] = "1.0"
EXCHANGE = "secondopinion.events"
SOURCE_PREFIX = "/secondopinion/"
TYPE_PREFIX = "secondopinion."
SCHEMA_BASE_URI = "https://schemas.secondopinion.example-hospital.jp/events/"


# CloudEvents 1.0 requires these four; this bus always sends the rest of the list too.
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
ALWAYS_SENT = ("subject", "time", "datacontenttype", "dataschema", "data", "sequence", "correlationid")

# The versioning policy (docs/subscribing.md): an attribute or event version that is replaced stays published,
# marked deprecated, until its sunset date.
SEQUENCE_SUNSET = "2027-06-30"


def _required_in_schema(schema: dict[str, Any]) -> None:
    schema["required"] = [*REQUIRED_ATTRIBUTES, *(name for name in ALWAYS_SENT if name not in REQUIRED_ATTRIBUTES)]
    schema["properties"]["sequence"].update(
        {"deprecated": True, "x-sunset": SEQUENCE_SUNSET, "x-replaced-by": "streamversion"})


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode, with this bus's extension attributes."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_required_in_schema)

    specversion: Literal["1.0"] = Field(SPECVERSION, description="The CloudEvents version: always `1.0`.")
    id: UUID = Field(description="Unique per event (a UUID); consumers deduplicate on it. A deprecated version "
                                 "published beside its successor has its own id.")
    source: str = Field(pattern=r"^/secondopinion/[a-z]+$",
                        description="`/secondopinion/<service>`: the service that owns and published the event.")
    type: str = Field(
        pattern=r"^secondopinion\.[a-z]+\.[A-Z][A-Za-z]+\.v[0-9]+$",
        description="`secondopinion.<service>.<EventName>.v<N>`; the routing key is the same without the prefix.",
    )
    subject: str = Field(min_length=1, description="The case id the event is about (the `case_id` in `data`).")
    time: datetime = Field(description="When the publishing service recorded the event: RFC 3339, in UTC.")
    datacontenttype: Literal["application/json"] = Field(
        "application/json", description="The media type of `data`: always `application/json`.")
    dataschema: str = Field(description="The URI (`$id`) of the JSON Schema of `data` for this `type`.")
    data: dict[str, Any] = Field(description="The event itself, as described by the schema `dataschema` names.")
    sequence: int = Field(ge=1, description=(
        "Deprecated: the same number as `streamversion`, under a name the CloudEvents Sequence extension defines "
        f"as a string. Published as an integer until {SEQUENCE_SUNSET}; read `streamversion` instead."))
    streamversion: int | None = Field(None, ge=1, description=(
        "The event's version in its stream (one stream per case and service record): it increases within the "
        "stream, with gaps (unpublished internal events). Absent on events recorded before envelope 1.1."))
    correlationid: str = Field(min_length=1, description="The case id, across every service: follow a case by it. "
                                                         "Also the AMQP `correlation_id` property.")
    causationid: str | None = Field(None, description="The id of the event, or `command:<...>` of the command, "
                                                      "that caused this event.")
    traceparent: str | None = Field(None, description="W3C Trace Context of the writer, for distributed tracing.")
    supersededby: str | None = Field(None, description=(
        "Only on a deprecated version published beside its successor: the successor's `type`. Skip such an "
        "event when you bind the successor too."))
    actorid: str | None = Field(None, description="Staff id of who issued the command, or the service's name.")
    actorrole: str | None = Field(None, description=(
        "The role the actor acted in: coordinator, physician, cashier, auditor, or system for a service's own "
        "reaction. Open: a role added later is not a new envelope version."))

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
    def stream_version(self) -> int:
        """The event's version in its stream, whichever envelope version carried it (read this, not `sequence`)."""
        return self.streamversion if self.streamversion is not None else self.sequence

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
