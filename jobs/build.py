"""The feature stage runner: reads raw partitions and writes features.user_daily / user_features for ds."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.cleaning import clean_events, clean_orders
from jobs.features import LOOKBACK_DAYS, user_daily, user_features
from segments import catalog

log = logging.getLogger(__name__)


@dataclass
class FeaturesSummary:
    ds: str
    daily_dates_built: list[str]
    active_users: int


def window_dates(ds: str, days: int = LOOKBACK_DAYS) -> list[str]:
    """The ``days`` dates ending at ds (inclusive), oldest first."""
    end = dt.date.fromisoformat(ds)
    return [(end - dt.timedelta(days=k)).isoformat() for k in range(days - 1, -1, -1)]


def build_features(spark: SparkSession, ds: str) -> FeaturesSummary:
    """Build user_daily for ds (and any missing day of its 90-day window), then user_features for ds."""
    raw_days = set(catalog.partitions("raw.events"))
    if ds not in raw_days:
        raise catalog.TableNotFound(f"raw.events has no partition ds={ds}")
    have_daily = set(catalog.partitions("features.user_daily"))
    # Rebuild ds itself always (a rerun must pick up corrected raw data); fill holes in the window.
    to_build = sorted({ds} | {d for d in window_dates(ds) if d in raw_days and d not in have_daily})
    if len(to_build) > 1:
        log.warning("features.user_daily: building %d missing dates (%s .. %s) in one job",
                    len(to_build), to_build[0], to_build[-1])
    events = clean_events(catalog.read_spark(spark, "raw.events").where(F.col("ds").isin(to_build)))
    orders = clean_orders(catalog.read_spark(spark, "raw.orders").where(F.col("ds").isin(to_build)))
    catalog.write_spark(user_daily(events, orders), "features.user_daily")

    first = window_dates(ds)[0]
    daily = catalog.read_spark(spark, "features.user_daily", since=first, until=_next_day(ds))
    users = catalog.read_spark(spark, "raw.users", ds=ds)
    catalog.write_spark(user_features(daily, users, ds), "features.user_features")
    active = catalog.read_spark(spark, "features.user_features", ds=ds).count()
    return FeaturesSummary(ds=ds, daily_dates_built=to_build, active_users=active)


def _next_day(ds: str) -> str:
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=1)).isoformat()
