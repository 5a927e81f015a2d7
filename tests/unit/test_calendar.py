"""jobs/features/calendar.py: public holidays from the ``holidays`` package."""

from __future__ import annotations

import pytest

from jobs.features import calendar


def test_holiday_dates_come_from_the_holidays_package():
    dates = calendar.holiday_dates("US", "2025-12-20", "2026-01-20")
    # Christmas, New Year's Day and Martin Luther King Jr. Day (third Monday of January: Jan 19, 2026).
    assert dates == ["2025-12-25", "2026-01-01", "2026-01-19"]
    with pytest.raises(calendar.UnknownHolidayCountry, match="'XX'"):
        calendar.holiday_dates("XX", "2026-01-01", "2026-01-31")
