"""Published event contracts of the second-opinion services.

Install this package alone to consume the bus from Python: it imports nothing from the services.
"""

from secondopinion_contracts.base import EventData
from secondopinion_contracts.envelope import CONTENT_TYPE, EXCHANGE, CloudEvent
from secondopinion_contracts.registry import ALL_EVENTS, BY_TYPE, UnknownEventType, event_class

__all__ = [
    "ALL_EVENTS",
    "BY_TYPE",
    "CONTENT_TYPE",
    "EXCHANGE",
    "CloudEvent",
    "EventData",
    "UnknownEventType",
    "event_class",
]
