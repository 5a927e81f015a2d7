"""Date arithmetic on partition dates ('YYYY-MM-DD' strings), shared by the feature jobs."""

from __future__ import annotations

import datetime as dt


def shift(ds: str, days: int) -> str:
    """The date ``days`` after ``ds`` (before it when negative)."""
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=days)).isoformat()
