"""Intake reacts to no other service's events: it is where a case begins."""

from __future__ import annotations

from collections.abc import Mapping

from eventkit.consumer import Handler
from secondopinion_contracts import EventData

HANDLERS: Mapping[type[EventData], Handler] = {}
