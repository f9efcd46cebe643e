"""Every published event version, by its CloudEvents `type`."""

from __future__ import annotations

from secondopinion_contracts.base import EventData
from secondopinion_contracts.events import billing, intake, reporting, scheduling

ALL_EVENTS: tuple[type[EventData], ...] = (*intake.EVENTS, *scheduling.EVENTS, *billing.EVENTS, *reporting.EVENTS)

BY_TYPE: dict[str, type[EventData]] = {event.type_name(): event for event in ALL_EVENTS}


class UnknownEventType(LookupError):
    pass


def event_class(type_name: str) -> type[EventData]:
    try:
        return BY_TYPE[type_name]
    except KeyError:
        raise UnknownEventType(f"unknown event type or version: {type_name!r}") from None
