"""Rolling state of the 90-day window: ``features.user_window`` and ``features.user_category_window``.

``user_features`` as of ds needs, per user, sums over the window [ds-89, ds] of ``user_daily`` (activity,
money and time-pattern counts) and, per user and category, the events and the last day seen. Reading the
90 daily partitions for them was the largest part of the daily run (docs/benchmarks.md). The state of a
day x is instead the stored state of an earlier day p plus the days that entered the window since, minus
the days that left it (W = 90)::

    S(x) = S(p) + sum_d ([x-W < d <= x] - [p-W < d <= p]) * daily(d)

so a daily run reads the few days at both ends of the window, not all of it. From scratch, S(p) of the
first date is one aggregation over its window and the other dates follow by the same formula.

Exact, so that a state updated day by day equals one built from scratch (``tests/unit/test_window_state.py``):
counts are longs, and money and dwell sums are ``DECIMAL(.., 4)`` while summing (stored as doubles, which
hold such values exactly up to 11 digits before the point). The only non-sums are the latest days
(``last_seen_ds``, ``last_purchase_ds``; per category ``last_seen_ds``): the max over the days added; a
day leaving the window is older than every day still in it, so a latest day older than the window means
"none in the window" and is cleared. A user (a user-category) with no active day (no event) left in the
window has no row.

The holiday counts depend on ``SEGMENTS_HOLIDAY_COUNTRY``: each state row records the country, and
``build_window_state`` starts from scratch when the stored state was built for another one. Run ds writes
the states of ds-L (final: the next run's base) and ds (as of ds: read by the features), from the latest
final stored state ``p < ds-L`` (``planning.is_final``; normally ds-L-1) and the ``user_daily`` days as the
run sees them (``user_daily.read_daily``); without a usable stored state (none in the last 90 days, or
one for another country) it starts from the window of ds-L-1.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core import settings as settings_mod
from core import tables, warehouse
from core.feature_catalog import DAYPARTS, WINDOW_DAYS
from jobs.dates import shift
from jobs.features.calendar import holiday_dates
from jobs.features.planning import is_final
from jobs.features.user_daily import AsOfDaily, purchase_day, read_daily

log = logging.getLogger(__name__)

USERS_TABLE, CATEGORIES_TABLE = "features.user_window", "features.user_category_window"
_EXACT = "decimal(24,4)"  # money and dwell while summing: exact, and exactly representable as double
_LATEST = ("last_seen_ds", "last_purchase_ds")


def _day_values(daily: DataFrame, holidays: list[str]) -> dict[str, Column]:
    """State column -> its value for one user_daily row (the sums of ``USERS_TABLE``)."""
    events = F.col("events")
    weekend = F.dayofweek(F.to_date("ds")).isin(1, 7)  # Sunday = 1, Saturday = 7
    holiday = F.col("ds").isin(holidays) if holidays else F.lit(False)
    values = {"active_days": F.lit(1).cast("long")}
    for column in ("sessions", "views", "searches", "add_to_carts", "purchases", "orders", "events",
                   *[f"events_{name}" for name, _, _ in DAYPARTS], "cancelled_orders", "refunded_orders"):
        values[column] = F.col(column).cast("long")
    values |= {
        "product_days": F.col("distinct_products").cast("long"),
        "events_weekend": F.when(weekend, events).otherwise(0).cast("long"),
        "events_holiday": F.when(holiday, events).otherwise(0).cast("long"),
        "revenue": F.col("revenue").cast(_EXACT),
        "discount_amount": F.col("discount_amount").cast(_EXACT),
        "dwell_seconds": F.col("dwell_seconds").cast(_EXACT),
    }
    declared = _sum_columns()
    assert sorted(values) == sorted(declared), "window_state and the table declaration disagree on the sums"
    return {c: values[c] for c in declared}


def _sum_columns() -> list[str]:
    """The sums of ``USERS_TABLE``, in storage order."""
    return [c for c in tables.table(USERS_TABLE).column_names
            if c not in ("user_id", "holiday_country", *_LATEST)]


def _exact(column: str) -> Column:
    """A stored sum read back for adding: doubles back to the exact decimal they were written from."""
    typ = dict(tables.table(USERS_TABLE).columns)[column]
    return F.col(column).cast(_EXACT if typ == "double" else "long")


def _user_rows(daily: DataFrame, holidays: list[str]) -> DataFrame:
    """One row per user_daily row: user_id, ds, the state values and the latest-day candidates."""
    bought = purchase_day()
    return daily.select("user_id", "ds", *[v.alias(c) for c, v in _day_values(daily, holidays).items()],
                        F.col("ds").alias("last_seen_ds"),
                        F.when(bought, F.col("ds")).alias("last_purchase_ds"))


def _category_rows(daily: DataFrame) -> DataFrame:
    return daily.select("user_id", "ds", F.explode("category_events").alias("category", "events")).select(
        "user_id", "ds", "category", F.col("events").cast("long").alias("events"),
        F.col("ds").alias("last_seen_ds"))


def _in_window(end: str) -> Column:
    """user_daily rows of the window ending at ``end`` (string comparison: a partition filter)."""
    return (F.col("ds") > shift(end, -WINDOW_DAYS)) & (F.col("ds") <= end)


def _finish(state: DataFrame, alive: str, latest: tuple[str, ...]) -> DataFrame:
    """Drop rows with nothing left in the window; clear latest days older than the window."""
    oldest = F.date_format(F.date_sub(F.to_date("ds"), WINDOW_DAYS - 1), "yyyy-MM-dd")
    return state.where(F.col(alive) > 0).select(
        *[F.when(F.col(c) >= oldest, F.col(c)).alias(c) if c in latest else F.col(c) for c in state.columns])


def window_states(daily: DataFrame, dates: list[str], holidays: list[str], *,
                  previous: tuple[DataFrame, DataFrame] | None = None,
                  base_ds: str | None = None) -> tuple[DataFrame, DataFrame]:
    """``(user_window, user_category_window)`` rows for every date in ``dates``.

    ``previous``: the stored states of ``base_ds`` (before every date), or None to build from scratch.
    ``daily``: user_daily rows; only the days entering and leaving the window are read (from scratch also
    the window of the first date). ``holidays``: the holiday dates of the country the state is for.
    Sums come out as longs and decimals (``warehouse.conform`` stores them), without ``holiday_country``.
    Updates come out partitioned by ds.
    """
    # One function on purpose (~65 lines): the update formula of the module docstring, step by step.
    dates = sorted(dates)
    sums = _sum_columns()
    if previous is None:
        base_ds = dates[0]
        base_daily = daily.where(_in_window(base_ds))
        users = _user_rows(base_daily, holidays).groupBy("user_id").agg(
            *[F.sum(c).alias(c) for c in sums], *[F.max(c).alias(c) for c in _LATEST])
        categories = _category_rows(base_daily).groupBy("user_id", "category").agg(
            F.sum("events").alias("events"), F.max("last_seen_ds").alias("last_seen_ds"))
    else:
        if base_ds is None or base_ds >= dates[0]:
            raise ValueError(f"the stored state merged from ({base_ds}) must predate every date ({dates[0]})")
        users = previous[0].select("user_id", *[_exact(c).alias(c) for c in sums], *_LATEST)
        categories = previous[1].select("user_id", "category", "events", "last_seen_ds")
    if dates == [base_ds]:  # from scratch for one date: the base is the answer
        base = F.lit(base_ds).alias("ds")
        return (_finish(users.select("*", base), "active_days", _LATEST),
                _finish(categories.select("*", base), "events", ("last_seen_ds",)))

    # Each day from the base's window to the last date, with +1 for the dates whose window it has entered
    # and -1 for those where it has left the base's window; the base state itself counts once per date.
    day = F.col("ds")
    in_base = _in_window(base_ds).cast("int")
    signs = F.array(*[F.struct(F.lit(x).alias("target"), (_in_window(x).cast("int") - in_base).alias("sign"))
                      for x in dates])
    # Only days whose sign is not 0 somewhere: those leaving the window and those entering it.
    leaving = (day > shift(base_ds, -WINDOW_DAYS)) & (day <= shift(dates[-1], -WINDOW_DAYS))
    moving = daily.where(leaving | ((day > base_ds) & (day <= dates[-1])))
    targets = F.array(*[F.lit(x) for x in dates])

    def delta(rows: DataFrame, values: list[str], latest: tuple[str, ...], keys: list[str]) -> DataFrame:
        signed = rows.select(*keys, *values, *latest, F.explode(signs).alias("_s"))
        signed = signed.where(F.col("_s.sign") != 0)
        entering = F.col("_s.sign") > 0
        return signed.select(
            *keys, F.col("_s.target").alias("ds"),
            *[F.when(entering, F.col(c)).otherwise(-F.col(c)).alias(c) for c in values],
            *[F.when(entering, F.col(c)).alias(c) for c in latest])  # leaving days are never the latest

    def carried(state: DataFrame, keys: list[str]) -> DataFrame:
        values = [c for c in state.columns if c not in keys]
        return state.select(*keys, F.explode(targets).alias("ds"), *values)

    # Shuffled by date only: the aggregation keeps that partitioning, so a write makes one file per date
    # without a second shuffle (and one task per date aggregates it).
    users = carried(users, ["user_id"]).unionByName(
        delta(_user_rows(moving, holidays), sums, _LATEST, ["user_id"])
    ).repartition("ds").groupBy("user_id", "ds").agg(*[F.sum(c).alias(c) for c in sums],
                                                     *[F.max(c).alias(c) for c in _LATEST])
    categories = carried(categories, ["user_id", "category"]).unionByName(
        delta(_category_rows(moving), ["events"], ("last_seen_ds",), ["user_id", "category"])
    ).repartition("ds").groupBy("user_id", "category", "ds").agg(F.sum("events").alias("events"),
                                                                 F.max("last_seen_ds").alias("last_seen_ds"))
    return (_finish(users, "active_days", _LATEST), _finish(categories, "events", ("last_seen_ds",)))


def _state_country(ds: str) -> str | None:
    """The holiday country a stored window state was built for (None: mixed or empty)."""
    countries = warehouse.read_arrow(USERS_TABLE, ds, ["holiday_country"]).column(0).unique()
    return countries[0].as_py() if len(countries) == 1 else None


def build_window_state(spark: SparkSession, ds: str, late_days: int, first_rebuilt: str | None = None,
                       asof: AsOfDaily | None = None) -> tuple[str | None, list[str]]:
    """Write the 90-day window states of ds-L and ds; return the stored state updated from (None: from
    scratch) and the dates written.

    As for the lifetime state, the state updated from is final and predates every user_daily day this run
    rebuilt. Only ds-L (final after this run: the next run's base) and ds (what the features read) are
    written; the days between are written by their own runs and rewritten, final, L runs later. Updating
    reads the days entering and leaving the window since the base: a state older than the window, or built
    for another holiday country, is not used.
    """
    country = settings_mod.load().holiday_country
    dates = sorted({shift(ds, -late_days), ds})
    before = min(dates[0], first_rebuilt or dates[0])
    stored = set(warehouse.partitions(USERS_TABLE)) & set(
        warehouse.partitions(CATEGORIES_TABLE))
    earlier = sorted(p for p in stored if shift(ds, -WINDOW_DAYS) < p < before)
    base = next((p for p in reversed(earlier) if is_final(USERS_TABLE, p, late_days)), None)
    if base is not None and _state_country(base) != country:
        log.warning("features.user_window of %s was built for another holiday country than %s: rebuilding "
                    "the window state from scratch", base, country)
        base = None
    if base is None:  # from scratch: also store ds-L-1 (final already), the base of the next run
        dates = [shift(ds, -late_days - 1), *dates]
    start = shift(base or dates[0], 1 - WINDOW_DAYS)  # the oldest day the update may read
    previous = None if base is None else (warehouse.read_spark(spark, USERS_TABLE, ds=base),
                                          warehouse.read_spark(spark, CATEGORIES_TABLE, ds=base))
    daily = read_daily(spark, start, shift(ds, 1), asof)
    users, categories = window_states(daily, dates, holiday_dates(country, start, ds),
                                                   previous=previous, base_ds=base)
    warehouse.write_spark_dates(users.withColumn("holiday_country", F.lit(country)), USERS_TABLE, dates)
    warehouse.write_spark_dates(categories, CATEGORIES_TABLE, dates)
    return base, dates
