"""Field types the events share, each with the description the published schemas carry.

Instants are UTC (RFC 3339); calendar dates (`*_on`) are dates in Asia/Tokyo, the hospital's time zone.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

CaseId = Annotated[UUID, Field(description="The case: the `subject` and `correlationid` of every event about it.")]
AppointmentId = Annotated[UUID, Field(description="The appointment, set by scheduling's SlotConfirmed.")]
InvoiceId = Annotated[UUID, Field(description="The invoice, set by billing's InvoiceIssued.")]
ReportId = Annotated[UUID, Field(description="The second-opinion report, set by reporting's first ReportDrafted.")]
SlotId = Annotated[UUID, Field(description="A department's consultation slot.")]
StaffId = Annotated[str, Field(min_length=1, max_length=100, description="Staff id of the physician (never a name).")]


def tokyo_date(meaning: str, **constraints: Any) -> Any:
    """A calendar date in Asia/Tokyo, described by what it is the date of."""
    return Field(description=f"{meaning} (a calendar date in Asia/Tokyo, YYYY-MM-DD).", **constraints)


def utc_instant(meaning: str, **constraints: Any) -> Any:
    return Field(description=f"{meaning} (an instant, RFC 3339 in UTC).", **constraints)


