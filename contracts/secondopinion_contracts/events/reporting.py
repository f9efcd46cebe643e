"""Events published by reporting (routing keys `reporting.<EventName>.v<N>`). The report text never
leaves reporting's database: these carry ids, codes and dates only."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import AmendmentReason, DeliveryChannel, Mode


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


class ReportAmended(_ReportingEvent):
    """A final report was amended: a new version (2, 3, ...) replaces it; the earlier versions stay readable.

    The amended version is final at once and is delivered again (ReportDelivered names the version)."""

    NAME: ClassVar[str] = "ReportAmended"
    report_id: UUID
    report_version: int = Field(ge=2)
    physician_id: str = Field(min_length=1, max_length=100)
    reason: AmendmentReason
    amended_on: date


class ReportDelivered(_ReportingEvent):
    NAME: ClassVar[str] = "ReportDelivered"
    report_id: UUID
    channel: DeliveryChannel
    delivered_on: date
    report_version: int = Field(1, ge=1, description="Which version of the report was delivered: 1 is the report "
                                                      "as first finalized, 2 and on its amendments.")


class CaseClosed(_ReportingEvent):
    """The report was delivered and the fee settled: nothing more is expected of the desk."""

    NAME: ClassVar[str] = "CaseClosed"
    report_id: UUID
    mode: Mode
    closed_on: date


EVENTS: tuple[type[EventData], ...] = (ReportDrafted, ReportFinalized, ReportAmended, ReportDelivered, CaseClosed)
