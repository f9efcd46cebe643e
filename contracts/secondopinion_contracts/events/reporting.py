"""Events published by reporting (routing keys `reporting.<EventName>.v<N>`). The report text never
leaves reporting's database: these carry ids, codes and dates only."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import AmendmentReason, DeliveryChannel, Mode
from secondopinion_contracts.fields import CaseId, ReportId, StaffId, tokyo_date


class _ReportingEvent(EventData):
    SERVICE: ClassVar[str] = "reporting"
    case_id: CaseId


class ReportDrafted(_ReportingEvent):
    """The physician saved a draft of the report."""

    NAME: ClassVar[str] = "ReportDrafted"
    report_id: ReportId
    physician_id: StaffId
    draft_number: int = Field(ge=1, description="Which draft this is, from 1.")


class ReportFinalized(_ReportingEvent):
    """The physician signed the report off: its text no longer changes."""

    NAME: ClassVar[str] = "ReportFinalized"
    report_id: ReportId
    physician_id: StaffId
    finalized_on: date = tokyo_date("When the report was finalized")


class ReportAmended(_ReportingEvent):
    """A final report was amended: a new version (2, 3, ...) replaces it; the earlier versions stay readable.

    The amended version is final at once and is delivered again (ReportDelivered names the version)."""

    NAME: ClassVar[str] = "ReportAmended"
    report_id: ReportId
    report_version: int = Field(ge=2, description="The new version: 2 for the first amendment, then 3, ...")
    physician_id: StaffId
    reason: AmendmentReason = Field(description="Why the report was amended.")
    amended_on: date = tokyo_date("When the report was amended")


class ReportDelivered(_ReportingEvent):
    """The report reached the patient or the attending physician."""

    NAME: ClassVar[str] = "ReportDelivered"
    report_id: ReportId
    channel: DeliveryChannel = Field(description="How it was delivered.")
    delivered_on: date = tokyo_date("When it was delivered")
    report_version: int = Field(1, ge=1, description="Which version of the report was delivered: 1 is the report "
                                                      "as first finalized, 2 and on its amendments.")


class CaseClosed(_ReportingEvent):
    """The report was delivered and the fee settled: nothing more is expected of the desk."""

    NAME: ClassVar[str] = "CaseClosed"
    report_id: ReportId
    mode: Mode = Field(description="The consultation's mode.")
    closed_on: date = tokyo_date("When the case was closed")


EVENTS: tuple[type[EventData], ...] = (ReportDrafted, ReportFinalized, ReportAmended, ReportDelivered, CaseClosed)
