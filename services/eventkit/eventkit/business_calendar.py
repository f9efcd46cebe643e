"""The desk's business-day calendar (docs/domain.md: the desk takes calls on business days, 8:30-17:00), shared by
every service that counts or schedules in business days (scheduling's slots, reporting's KPIs). Pure, no I/O.

Business days are Monday to Friday in Asia/Tokyo, except Japanese national holidays (substitute and
citizens' holidays included, from `jpholiday`, which is maintained as the Cabinet Office announces
them), the year-end/new-year closure 29 Dec - 3 Jan (the hospital's own, not a national holiday),
and extra closures the hospital configures. Reception hours are 8:30-17:00; consultations are held
within them, on business days only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

import jpholiday

from eventkit.clock import TOKYO

RECEPTION_OPENS = time(8, 30)
RECEPTION_CLOSES = time(17, 0)
# (month, day) of the first and last day of the year-end/new-year closure.
YEAR_END_CLOSURE_STARTS = (12, 29)
YEAR_END_CLOSURE_ENDS = (1, 3)


class ClosureReason(StrEnum):
    YEAR_END_CLOSURE = "year_end_closure"
    NATIONAL_HOLIDAY = "national_holiday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"
    HOSPITAL_CLOSURE = "hospital_closure"


@dataclass(frozen=True)
class Closure:
    day: date
    reason: ClosureReason
    holiday_name: str | None = None

    def describe(self) -> str:
        match self.reason:
            case ClosureReason.YEAR_END_CLOSURE:
                return f"{self.day} is in the year-end/new-year closure (29 Dec - 3 Jan)"
            case ClosureReason.NATIONAL_HOLIDAY:
                return f"{self.day} is a national holiday ({self.holiday_name})"
            case ClosureReason.SATURDAY | ClosureReason.SUNDAY:
                return f"{self.day} is a {self.reason.value.capitalize()}"
            case ClosureReason.HOSPITAL_CLOSURE:
                return f"{self.day} is a hospital closure day"
        raise AssertionError(self.reason)


def in_year_end_closure(day: date) -> bool:
    month_day = (day.month, day.day)
    return month_day >= YEAR_END_CLOSURE_STARTS or month_day <= YEAR_END_CLOSURE_ENDS


class BusinessCalendar:
    def __init__(self, extra_closures: Iterable[date] = ()) -> None:
        self.extra_closures = frozenset(extra_closures)

    def closure(self, day: date) -> Closure | None:
        """Why the desk is closed on `day`, or None on a business day."""
        if in_year_end_closure(day):
            return Closure(day, ClosureReason.YEAR_END_CLOSURE)
        holiday: str | None = jpholiday.is_holiday_name(day)
        if holiday:
            return Closure(day, ClosureReason.NATIONAL_HOLIDAY, holiday)
        if day.weekday() == 5:
            return Closure(day, ClosureReason.SATURDAY)
        if day.weekday() == 6:
            return Closure(day, ClosureReason.SUNDAY)
        if day in self.extra_closures:
            return Closure(day, ClosureReason.HOSPITAL_CLOSURE)
        return None

    def is_business_day(self, day: date) -> bool:
        return self.closure(day) is None

    def days(self, first: date, last: date) -> list[date]:
        return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]

    def business_days(self, first: date, last: date) -> list[date]:
        return [day for day in self.days(first, last) if self.is_business_day(day)]

    def closures(self, first: date, last: date) -> list[Closure]:
        return [closure for day in self.days(first, last) if (closure := self.closure(day)) is not None]

    def consultation_problems(self, start: datetime, end: datetime) -> list[str]:
        """Why a consultation from `start` to `end` (aware) cannot be held; empty when it can."""
        if start.tzinfo is None or end.tzinfo is None:
            return ["start and end must carry a time zone"]
        if end <= start:
            return [f"the consultation must end after it starts ({start.isoformat()})"]
        local_start, local_end = start.astimezone(TOKYO), end.astimezone(TOKYO)
        problems: list[str] = []
        closure = self.closure(local_start.date())
        if closure is not None:
            problems.append(closure.describe())
        if local_start.time() < RECEPTION_OPENS:
            problems.append(f"{local_start:%Y-%m-%d %H:%M} is before reception opens at {RECEPTION_OPENS:%H:%M}")
        if local_end.date() != local_start.date() or local_end.time() > RECEPTION_CLOSES:
            problems.append(f"a consultation from {local_start:%Y-%m-%d %H:%M} ends at {local_end:%H:%M}, "
                            f"after reception closes at {RECEPTION_CLOSES:%H:%M}")
        return problems


def tokyo_datetime(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=TOKYO)
