"""Time as the hospital sees it: instants in UTC, dates and hours in Asia/Tokyo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def tokyo_date(instant: datetime) -> date:
    return instant.astimezone(TOKYO).date()
