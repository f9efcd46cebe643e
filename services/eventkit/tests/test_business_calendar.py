"""The business-day calendar on real dates (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from eventkit.business_calendar import BusinessCalendar, ClosureReason, tokyo_datetime

CALENDAR = BusinessCalendar()


def test_the_last_working_day_of_2026_is_open_and_the_year_end_closure_is_not() -> None:
    assert CALENDAR.is_business_day(date(2026, 12, 28))
    closed = [date(2026, 12, 29) + timedelta(days=offset) for offset in range(6)]
    assert closed[-1] == date(2027, 1, 3)
    assert not any(CALENDAR.is_business_day(day) for day in closed)
    # 29-31 Dec are weekdays and no national holiday: only the hospital's closure closes them.
    assert {CALENDAR.closure(day).reason for day in closed[:3]} == {ClosureReason.YEAR_END_CLOSURE}  # type: ignore[union-attr]
    assert CALENDAR.is_business_day(date(2027, 1, 4))


@pytest.mark.parametrize(("day", "reason", "name"), [
    (date(2027, 1, 11), ClosureReason.NATIONAL_HOLIDAY, "成人の日"),  # Coming of Age Day, 2nd Monday of January
    (date(2026, 5, 6), ClosureReason.NATIONAL_HOLIDAY, "憲法記念日 振替休日"),  # substitute holiday
    (date(2026, 9, 22), ClosureReason.NATIONAL_HOLIDAY, "国民の休日"),  # citizens' holiday between two holidays
    (date(2027, 3, 22), ClosureReason.NATIONAL_HOLIDAY, "春分の日 振替休日"),  # vernal equinox on a Sunday
    (date(2027, 1, 9), ClosureReason.SATURDAY, None),
    (date(2027, 1, 10), ClosureReason.SUNDAY, None),
])
def test_holidays_and_weekends_are_closed_with_their_reason(day: date, reason: ClosureReason,
                                                            name: str | None) -> None:
    closure = CALENDAR.closure(day)
    assert closure is not None
    assert closure.reason is reason
    assert closure.holiday_name == name
    assert str(day) in closure.describe()


def test_extra_closures_from_configuration_close_an_otherwise_open_day() -> None:
    anniversary = date(2027, 2, 17)
    assert CALENDAR.is_business_day(anniversary)
    calendar = BusinessCalendar([anniversary])
    closure = calendar.closure(anniversary)
    assert closure is not None
    assert closure.reason is ClosureReason.HOSPITAL_CLOSURE


def test_business_days_of_a_range_skip_closures_and_weekends() -> None:
    days = CALENDAR.business_days(date(2026, 12, 24), date(2027, 1, 12))
    assert days == [date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 28), date(2027, 1, 4),
                    date(2027, 1, 5), date(2027, 1, 6), date(2027, 1, 7), date(2027, 1, 8), date(2027, 1, 12)]
    closures = CALENDAR.closures(date(2026, 12, 24), date(2027, 1, 12))
    assert len(days) + len(closures) == 20


def test_consultations_must_lie_within_reception_hours_on_a_business_day() -> None:
    monday = date(2026, 12, 28)
    first_and_last = [(time(8, 30), time(9, 0)), (time(16, 0), time(17, 0))]
    for start, end in first_and_last:
        assert CALENDAR.consultation_problems(tokyo_datetime(monday, start), tokyo_datetime(monday, end)) == []
    early = CALENDAR.consultation_problems(tokyo_datetime(monday, time(8, 0)), tokyo_datetime(monday, time(8, 30)))
    assert early == ["2026-12-28 08:00 is before reception opens at 08:30"]
    late = CALENDAR.consultation_problems(tokyo_datetime(monday, time(16, 30)), tokyo_datetime(monday, time(17, 30)))
    assert late == ["a consultation from 2026-12-28 16:30 ends at 17:30, after reception closes at 17:00"]
    closed_day = date(2026, 12, 29)
    assert CALENDAR.consultation_problems(tokyo_datetime(closed_day, time(10)), tokyo_datetime(closed_day, time(11))) \
        == ["2026-12-29 is in the year-end/new-year closure (29 Dec - 3 Jan)"]


def test_hours_are_judged_in_tokyo_whatever_zone_the_instant_is_given_in() -> None:
    # 00:00 UTC is 09:00 in Tokyo: inside reception hours; 23:00 UTC the day before is 08:00 Tokyo: not.
    assert CALENDAR.consultation_problems(datetime(2026, 12, 28, 0, 0, tzinfo=UTC),
                                          datetime(2026, 12, 28, 1, 0, tzinfo=UTC)) == []
    assert CALENDAR.consultation_problems(datetime(2026, 12, 27, 23, 0, tzinfo=UTC),
                                          datetime(2026, 12, 28, 0, 0, tzinfo=UTC)) \
        == ["2026-12-28 08:00 is before reception opens at 08:30"]
    assert CALENDAR.consultation_problems(datetime(2026, 12, 28, 9), datetime(2026, 12, 28, 10)) \
        == ["start and end must carry a time zone"]
