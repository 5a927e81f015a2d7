"""Lifetime state ``features.user_lifetime``: per user, everything since the first day we saw them.

One row per user ever active on or before ds: first/last seen day, first/last purchase day (a day with a
completed order or a purchase event, the same definition as the purchase recency features), lifetime
completed orders, revenue and active days (days with a ``user_daily`` row). Dates are ``YYYY-MM-DD``
strings, null when there was no purchase.

Incremental: ``state(x) = merge(state(p), user_daily rows with p < ds <= x)``, so recency and lifetime
RFM are exact without rescanning history. Revenue is summed as ``DECIMAL(.., 2)`` (cents, exact), so
merging partial sums in any order gives bit-identical results: rebuilding from scratch and updating day
by day agree exactly (tests/integration/test_feature_build.py).

Which ``p`` the runner merges from, and why it rewrites the last ``SEGMENTS_LATE_DATA_DAYS + 1`` states
on every run (late data changes recent ``user_daily`` days), is explained in ``jobs.build``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

STATE_COLUMNS = ("first_seen_ds", "last_seen_ds", "first_purchase_ds", "last_purchase_ds", "lifetime_orders",
                 "lifetime_revenue", "lifetime_active_days")
_MONEY = "decimal(20,2)"  # exact cents while summing; stored as double


def _purchase_day(daily: DataFrame) -> Column:
    return (F.col("orders") > 0) | (F.col("purchases") > 0)


def _day_states(daily: DataFrame) -> DataFrame:
    """Each user_daily row as a one-day state (user_id, _day, state columns)."""
    day = F.col("ds")
    bought = _purchase_day(daily)
    return daily.select(
        "user_id",
        day.alias("_day"),
        day.alias("first_seen_ds"),
        day.alias("last_seen_ds"),
        F.when(bought, day).alias("first_purchase_ds"),
        F.when(bought, day).alias("last_purchase_ds"),
        F.col("orders").cast("long").alias("lifetime_orders"),
        F.col("revenue").cast(_MONEY).alias("lifetime_revenue"),
        F.lit(1).cast("long").alias("lifetime_active_days"),
    )


def _combine() -> list[Column]:
    return [
        F.min("first_seen_ds").alias("first_seen_ds"),
        F.max("last_seen_ds").alias("last_seen_ds"),
        F.min("first_purchase_ds").alias("first_purchase_ds"),
        F.max("last_purchase_ds").alias("last_purchase_ds"),
        F.sum("lifetime_orders").cast("long").alias("lifetime_orders"),
        F.sum("lifetime_revenue").cast("double").alias("lifetime_revenue"),
        F.sum("lifetime_active_days").cast("long").alias("lifetime_active_days"),
    ]


def lifetime_states(previous: DataFrame | None, daily: DataFrame, dates: list[str]) -> DataFrame:
    """``features.user_lifetime`` rows for every date in ``dates``, in one aggregation.

    ``previous``: a stored state (any ``ds`` column is ignored) covering every day before the rows of
    ``daily``, or None to start from nothing. ``daily``: ``user_daily`` rows after that state; rows dated
    after ``max(dates)`` are ignored (point in time). The state at date x merges ``previous`` with the
    rows with ds <= x. The rows come out partitioned by ds.
    """
    first, last = min(dates), max(dates)
    targets = F.array(*[F.lit(d) for d in sorted(dates)])
    rows = _day_states(daily.where(F.col("ds") <= last))
    # Rows before the first date count for every date; later rows for the dates on or after their day.
    as_of = F.when(F.col("_day") < first, targets).otherwise(F.filter(targets, lambda x: x >= F.col("_day")))
    parts = rows.select("user_id", F.explode(as_of).alias("_as_of"), *STATE_COLUMNS)
    if previous is not None:
        carried = previous.select(
            "user_id", F.explode(targets).alias("_as_of"),
            *[F.col(c).cast(_MONEY).alias(c) if c == "lifetime_revenue" else F.col(c) for c in STATE_COLUMNS],
        )
        parts = carried.unionByName(parts)
    # Shuffled by date only: the aggregation keeps that partitioning, so a write makes one file per date
    # without a second shuffle.
    return parts.repartition("_as_of").groupBy("user_id", "_as_of").agg(*_combine()).withColumnRenamed(
        "_as_of", "ds")
