"""The base of every published event model: identity (service, name, version) and strict data."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from secondopinion_contracts.envelope import event_type, routing_key, schema_uri


class EventData(BaseModel):
    """The `data` of one event version. Subclasses set SERVICE, NAME and VERSION.

    Unknown fields are rejected on the producing side (`extra="forbid"`), so nothing undeclared is
    ever published; consumers that must accept newer minor additions use `parse_lenient`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    SERVICE: ClassVar[str]
    NAME: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # A deprecated version: the date after which it is no longer published (docs/subscribing.md, versioning).
    SUNSET: ClassVar[str | None] = None

    @classmethod
    def type_name(cls) -> str:
        return event_type(cls.SERVICE, cls.NAME, cls.VERSION)

    @classmethod
    def routing_key(cls) -> str:
        return routing_key(cls.SERVICE, cls.NAME, cls.VERSION)

    @classmethod
    def schema_uri(cls) -> str:
        return schema_uri(cls.SERVICE, cls.NAME, cls.VERSION)

    def published_alongside(self) -> tuple[EventData, ...]:
        """Older versions of this event still published beside it during their deprecation period."""
        return ()

    @classmethod
    def parse_lenient(cls, data: dict[str, Any]) -> EventData:
        """Validate data from the bus, ignoring fields added after this model was released."""
        known = {key: value for key, value in data.items() if key in cls.model_fields}
        return cls.model_validate(known)
