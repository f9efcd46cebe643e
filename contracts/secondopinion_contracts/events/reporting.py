"""Events published by reporting (routing keys `reporting.<EventName>.v<N>`). The report text never
leaves reporting's database: these carry ids, codes and dates only."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import DeliveryChannel, Mode


class _ReportingEvent(EventData):
    SERVICE: ClassVar[str] = "reporting"
    case_id: UUID


class ReportDrafted(_ReportingEvent):
    NAME: ClassVar[str] = "ReportDrafted"
    report_id: UUID
    physician_id: str = Field(min_length=1, max_length=100)
    draft_number: int = Field(ge=1)


class ReportFinalized(_ReportingEvent):
    NAME: ClassVar[str] = "ReportFinalized"
    report_id: UUID
    physician_id: str = Field(min_length=1, max_length=100)
    finalized_on: date


class ReportDelivered(_ReportingEvent):
    NAME: ClassVar[str] = "ReportDelivered"
    report_id: UUID
    channel: DeliveryChannel
    delivered_on: date


class CaseClosed(_ReportingEvent):
    """The report was delivered and the fee settled: nothing more is expected of the desk."""

    NAME: ClassVar[str] = "CaseClosed"
    report_id: UUID
    mode: Mode
    closed_on: date


EVENTS: tuple[type[EventData], ...] = (ReportDrafted, ReportFinalized, ReportDelivered, CaseClosed)
