"""Public holidays of the configured country (``SEGMENTS_HOLIDAY_COUNTRY``), from the ``holidays`` package."""

from __future__ import annotations

import datetime as dt

from core.errors import PlatformError


class UnknownHolidayCountry(PlatformError):
    """SEGMENTS_HOLIDAY_COUNTRY names a country the `holidays` package does not know."""

    hint = "set SEGMENTS_HOLIDAY_COUNTRY to an ISO 3166-1 alpha-2 code, e.g. US, GB, DE (see holidays.list_supported_countries())"


def holiday_dates(country: str, first: str, last: str) -> list[str]:
    """Public holidays of ``country`` between ``first`` and ``last`` (inclusive), as 'YYYY-MM-DD'.

    Computed on the driver (a few dozen dates) and passed to Spark as a literal set: no Python UDF.
    """
    import holidays

    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    try:
        calendar = holidays.country_holidays(country, years=range(start.year, end.year + 1))
    except NotImplementedError:
        raise UnknownHolidayCountry(f"holiday country {country!r} is not known to the holidays package") from None
    return sorted(d.isoformat() for d in calendar if start <= d <= end)
