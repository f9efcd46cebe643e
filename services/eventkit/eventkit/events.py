"""What the runtime records: events with who caused them, and the context a command runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from eventkit.idempotency import current_request_metadata
from secondopinion_contracts import EventData

SYSTEM_ROLE = "system"


class PrivateEvent(BaseModel):
    """An event a service keeps to itself: recorded in its store, never published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    NAME: ClassVar[str]
    VERSION: ClassVar[int] = 1


Event = EventData | PrivateEvent


def name_of(event: type[Event] | Event) -> str:
    return event.NAME


@dataclass(frozen=True)
class Actor:
    """Who issued a command: a staff member from their token, or a service reacting to an event."""

    id: str
    role: str

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls(id=name, role=SYSTEM_ROLE)


@dataclass(frozen=True)
class CommandContext:
    """Carried from the request (or the consumed event) into the metadata of every event written."""

    actor: Actor
    correlation_id: str
    causation_id: str | None = None
    command: str | None = None
    # Filled in the request's task: an idempotent request's events carry its key (eventkit.idempotency).
    extra: dict[str, Any] = field(default_factory=current_request_metadata)

    def metadata(self) -> dict[str, Any]:
        return {
            "actor": {"id": self.actor.id, "role": self.actor.role},
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "command": self.command,
            **self.extra,
        }


@dataclass(frozen=True)
class RecordedEvent:
    position: int
    stream_id: str
    stream_type: str
    version: int
    event_id: UUID
    data: Event
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def name(self) -> str:
        return self.data.NAME
