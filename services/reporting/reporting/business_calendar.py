"""The desk's business days, for the KPIs: Monday to Friday, except Japanese national holidays and the
year-end/new-year closure (29 Dec - 3 Jan), the days the desk receives requests on (docs/domain.md). Pure.

The calendar is stored as (day, business day?, ordinal) where the ordinal counts business days up to and
including the day, so "business days from A to B" is ordinal(B) - ordinal(A) in one join, set-based.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import jpholiday

from eventkit.business_calendar import BusinessCalendar, in_year_end_closure

# Years the stored calendar covers: durations touching a day outside it count as unknown (NULL).
FIRST_YEAR = 2020
YEARS_AHEAD = 10


@dataclass(frozen=True)
class CalendarDay:
    day: date
    business_day: bool
    ordinal: int


def is_business_day(day: date, holidays: frozenset[date] | None = None) -> bool:
    """The shared calendar's rule (weekends, national holidays, 29 Dec - 3 Jan); `holidays` speeds up a range."""
    if holidays is None:
        return BusinessCalendar().is_business_day(day)
    return day.weekday() < 5 and not in_year_end_closure(day) and day not in holidays


def holidays_between(first: date, last: date) -> frozenset[date]:
    return frozenset(holiday for holiday, _ in jpholiday.between(first, last))


def calendar_days(first: date, last: date) -> Iterator[CalendarDay]:
    holidays = holidays_between(first, last)
    ordinal = 0
    day = first
    while day <= last:
        business = is_business_day(day, holidays)
        ordinal += business
        yield CalendarDay(day, business, ordinal)
        day += timedelta(days=1)


def business_days_between(start: date, end: date) -> int:
    """Business days after `start` up to and including `end` (0 on the same day; negative if reversed)."""
    if end < start:
        return -business_days_between(end, start)
    holidays = holidays_between(start, end)
    return sum(is_business_day(start + timedelta(days=n), holidays) for n in range(1, (end - start).days + 1))


def default_range(today: date) -> tuple[date, date]:
    return date(FIRST_YEAR, 1, 1), date(today.year + YEARS_AHEAD, 12, 31)
