"""Lifetime state ``features.user_lifetime``: per user, everything since the first day we saw them.

One row per user ever active on or before ds: first/last seen day, first/last purchase day (a day with a
completed order or a purchase event, the same definition as the purchase recency features), lifetime
completed orders, revenue and active days (days with a ``user_daily`` row). Dates are ``YYYY-MM-DD``
strings, null when there was no purchase.

Incremental: ``state(x) = merge(state(p), user_daily rows with p < ds <= x)``, so recency and lifetime
RFM are exact without rescanning history. Revenue is summed as ``DECIMAL(.., 2)`` (cents, exact), so
merging partial sums in any order gives bit-identical results: rebuilding from scratch and updating day
by day agree exactly (tests/integration/test_feature_build.py).

``build_lifetime``: run ds writes the states of ds-L (final: every day up to ds-L is complete once
partition ds has arrived; a later run's base) and ds (as of ds: what ``user_features`` and scoring of ds
read) = the latest *final* stored state ``p < ds-L`` (``planning.is_final``) merged with ``user_daily`` days
``(p, ds]`` as this run sees them (``user_daily.read_daily``: up to ds, the as-of versions of days revised
since). In date order, ``p = ds-L-1`` was written final by run ``ds-1``, so the incremental state equals a
rebuild from scratch. Without a final stored state it starts from scratch (all ``user_daily <= ds``) and
also stores ds-L-1, so that the next run is incremental. A rerun of an old date writes its as-of state
over the final one; later runs then merge from an older final state (they read a few more days).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core import warehouse
from jobs.dates import shift
from jobs.features.planning import is_final
from jobs.features.user_daily import AsOfDaily, purchase_day, read_daily

STATE = "features.user_lifetime"

STATE_COLUMNS = ("first_seen_ds", "last_seen_ds", "first_purchase_ds", "last_purchase_ds", "lifetime_orders",
                 "lifetime_revenue", "lifetime_active_days")
_MONEY = "decimal(20,2)"  # exact cents while summing; stored as double


def _day_states(daily: DataFrame) -> DataFrame:
    """Each user_daily row as a one-day state (user_id, _day, state columns)."""
    day = F.col("ds")
    bought = purchase_day()
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


def build_lifetime(spark: SparkSession, ds: str, late_days: int, first_rebuilt: str | None = None,
                   asof: AsOfDaily | None = None) -> tuple[str | None, list[str]]:
    """Write user_lifetime for ds-L and ds; return the stored state merged from (None: from scratch) and
    the dates written.

    The state merged from is final and predates every user_daily day this run rebuilt (``first_rebuilt``).
    """
    dates = sorted({shift(ds, -late_days), ds})
    before = min(dates[0], first_rebuilt or dates[0])
    earlier = [p for p in warehouse.partitions(STATE) if p < before]
    base = next((p for p in reversed(earlier) if is_final(STATE, p, late_days)), None)
    if base is None:  # from scratch: also store ds-L-1 (final already), so that the next run is incremental
        dates = [shift(ds, -late_days - 1), *dates]
    previous = warehouse.read_spark(spark, STATE, ds=base) if base else None
    daily = read_daily(spark, shift(base, 1) if base else None, shift(ds, 1), asof)
    warehouse.write_spark_dates(lifetime_states(previous, daily, dates), STATE, dates)
    return base, dates
