"""Business calendar: Chinese holidays, make-up working days, region overrides, fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from cases.domain.calendar import BusinessCalendar, holiday_table_years

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar()


def at(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def test_the_library_knows_the_dates_these_tests_rely_on():
    # National Day 2025: Oct 1-8 off, Sunday Sep 28 and Saturday Oct 11 worked.
    assert not any(chinese_calendar.is_workday(date(2025, 10, d)) for d in range(1, 9))
    assert chinese_calendar.is_workday(date(2025, 9, 28))  # Sunday
    assert chinese_calendar.is_workday(date(2025, 10, 11))  # Saturday
    assert date(2025, 9, 28).weekday() == 6 and date(2025, 10, 11).weekday() == 5
    first, last = holiday_table_years()
    assert first <= 2025 <= last


def test_workdays_follow_holidays_and_make_up_days():
    assert CAL.is_workday(date(2025, 9, 30))
    assert not CAL.is_workday(date(2025, 10, 1))
    assert not CAL.is_workday(date(2025, 10, 8))  # a Wednesday, still holiday
    assert CAL.is_workday(date(2025, 10, 11))  # make-up Saturday
    assert not CAL.is_workday(date(2025, 10, 18))  # ordinary Saturday


def test_fallback_to_weekends_outside_the_known_years():
    _, last = holiday_table_years()
    year = last + 4
    monday = date(year, 1, 1) + timedelta(days=(7 - date(year, 1, 1).weekday()) % 7)
    assert CAL.is_workday(monday)
    assert not CAL.is_workday(monday + timedelta(days=5))  # Saturday
    assert not CAL.is_workday(monday + timedelta(days=6))  # Sunday


def test_region_overrides_win():
    cal = BusinessCalendar(
        extra_holidays={date(2025, 10, 9)},  # a regional day off
        extra_workdays={date(2025, 10, 5)},  # staff on duty during the holiday
    )
    assert not cal.is_workday(date(2025, 10, 9))
    assert cal.is_workday(date(2025, 10, 5))
    cal2 = cal.with_overrides(extra_workdays=[date(2025, 10, 9)])
    assert cal2.is_workday(date(2025, 10, 9))
    with pytest.raises(ValueError):
        BusinessCalendar(extra_holidays={date(2025, 1, 2)}, extra_workdays={date(2025, 1, 2)})


def test_is_working_time():
    assert CAL.is_working_time(at(2025, 9, 30, 9))
    assert CAL.is_working_time(at(2025, 9, 30, 17, 59))
    assert not CAL.is_working_time(at(2025, 9, 30, 18))
    assert not CAL.is_working_time(at(2025, 9, 30, 8, 59))
    assert not CAL.is_working_time(at(2025, 10, 2, 10))
    assert CAL.is_working_time(at(2025, 10, 11, 10))
    # 02:00 UTC is 10:00 in Shanghai
    assert CAL.is_working_time(datetime(2025, 9, 30, 2, 0, tzinfo=UTC))


def test_naive_datetimes_refused():
    with pytest.raises(ValueError):
        CAL.is_working_time(datetime(2025, 9, 30, 10))
    with pytest.raises(ValueError):
        CAL.add_working_time(datetime(2025, 9, 30, 10), timedelta(hours=1))


def test_add_working_time_over_the_national_day_holiday():
    # Tue Sep 30 16:00 + 4 working hours: 2 h that day, the holiday, 2 h on Thu Oct 9
    assert CAL.add_working_time(at(2025, 9, 30, 16), timedelta(hours=4)) == at(2025, 10, 9, 11)


def test_add_working_time_onto_a_make_up_saturday():
    # Fri Oct 10 16:00 + 4 h -> Saturday Oct 11 (make-up day) 11:00
    assert CAL.add_working_time(at(2025, 10, 10, 16), timedelta(hours=4)) == at(2025, 10, 11, 11)
    # the same a week later runs over an ordinary weekend to Monday
    assert CAL.add_working_time(at(2025, 10, 17, 16), timedelta(hours=4)) == at(2025, 10, 20, 11)
    # Fri Sep 26 17:00 + 2 h -> make-up Sunday Sep 28 10:00
    assert CAL.add_working_time(at(2025, 9, 26, 17), timedelta(hours=2)) == at(2025, 9, 28, 10)


def test_add_working_time_edges():
    start = at(2025, 9, 30, 14)
    assert CAL.add_working_time(start, timedelta(0)) == start
    assert CAL.add_working_time(start, timedelta(hours=4)) == at(2025, 9, 30, 18)
    # starting at night counts from the next morning
    assert CAL.add_working_time(at(2025, 9, 29, 22), timedelta(hours=1)) == at(2025, 9, 30, 10)
    with pytest.raises(ValueError):
        CAL.add_working_time(start, timedelta(hours=-1))


def test_lunch_break():
    cal = BusinessCalendar(lunch_break=(time(12), time(13)))
    assert cal.working_day_length() == timedelta(hours=8)
    assert not cal.is_working_time(at(2025, 9, 30, 12, 30))
    assert cal.add_working_time(at(2025, 9, 30, 11), timedelta(hours=2)) == at(2025, 9, 30, 14)


def test_working_time_between():
    assert CAL.working_time_between(at(2025, 9, 30, 16), at(2025, 10, 9, 11)) == timedelta(hours=4)
    assert CAL.working_time_between(at(2025, 10, 1), at(2025, 10, 8, 23)) == timedelta(0)
    assert CAL.working_time_between(at(2025, 10, 10, 9), at(2025, 10, 13, 9)) == timedelta(
        hours=18
    )  # Friday + make-up Saturday
    assert CAL.working_time_between(at(2025, 9, 30, 12), at(2025, 9, 30, 10)) == timedelta(0)


def test_add_and_between_agree():
    start = at(2025, 9, 25, 15, 17)
    for hours in (1, 5, 9, 13, 40, 100):
        end = CAL.add_working_time(start, timedelta(hours=hours))
        assert CAL.working_time_between(start, end) == timedelta(hours=hours)


def test_config_round_trip():
    cal = BusinessCalendar.from_config(
        {
            "working_hours": ["08:30", "17:30"],
            "lunch_break": ["12:00", "13:00"],
            "extra_holidays": ["2026-05-06"],
        }
    )
    assert cal.working_hours == (time(8, 30), time(17, 30))
    assert not cal.is_workday(date(2026, 5, 6))
    assert BusinessCalendar.from_config(cal.to_config()) == cal


def test_the_year_of_a_moment_is_the_regions():
    cal = BusinessCalendar()
    assert cal.year_of(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == 2027  # 00:30 in Shenzhen
    assert cal.year_of(datetime(2026, 12, 31, 15, 59, tzinfo=UTC)) == 2026
