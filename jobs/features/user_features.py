"""``features.user_features``: one row per user active in the 90 days up to ds; training and scoring read it.

The transform is a ``DataFrame -> DataFrame`` function (no session, no paths, no UDFs); every feature is
declared (name, family, unit, window, description) in ``core.feature_catalog``, and ``docs/features.md``
is generated from it. As of ds it uses only ``user_daily`` rows with ds in [ds-89, ds] (the 90-day window
as the rolling state of ds, ``window_state``; the shorter windows from the last 30 days' rows) and the
lifetime state of ds, so nothing after the logical date can leak in. A user is "active" (gets a row)
with any activity in those 90 days.

Speed: it reads the 90-day state (one row per user, one per user and category) and aggregates the last
30 days of the daily table per user with fixed-width aggregates only, so Spark uses its code-generated
hash aggregate; the object-based parts (the 28-day sequences, the device mode) are a separate
aggregation over the same ``user_id`` partitioning, joined back without a further shuffle.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core import feature_catalog, tables
from core.feature_catalog import (
    AGE_BUCKETS,
    DAYPARTS,
    DEVICE_WINDOW,
    MONEY_WINDOW,
    PATTERN_WINDOW,
    RATE_WINDOW,
    RECENT_DAYS,
    SEQUENCE_SOURCES,
    TREND_RECENT_DAYS,
    WINDOW_DAYS,
)
from core.settings import FEATURE_WINDOWS, SEQUENCE_DAYS
from core.tables import SPARK_TYPES, UNKNOWN
from jobs.dates import shift
from jobs.features.calendar import holiday_dates
from jobs.features.lifetime import lifetime_states
from jobs.features.user_daily import count_if
from jobs.features.window_state import window_states


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0 when the denominator is 0 or null (ANSI mode would raise)."""
    return F.coalesce(F.try_divide(numerator, denominator), F.lit(0.0))


def _age_bucket(age: Column) -> Column:
    bucket = F.lit(UNKNOWN)
    for label, low, high in reversed(AGE_BUCKETS):
        bucket = F.when((age >= low) & (age <= high), F.lit(label)).otherwise(bucket)
    return F.when(age.isNull(), F.lit(UNKNOWN)).otherwise(bucket)


def _trend(last7: Column, last28: Column) -> Column:
    """log of the last 7 days' daily rate over the 21 days before: >0 ramping up, <0 fading."""
    before_days = SEQUENCE_DAYS - TREND_RECENT_DAYS
    before = (last28 - last7) / float(before_days)
    return F.log((1.0 + last7 / float(TREND_RECENT_DAYS)) / (1.0 + before))

# Least-squares slope over days t = 0..27 (t = 27 - offset) with zeros on inactive days:
# slope = sum((t - mean_t) * y_t) / sum((t - mean_t)^2), and t - mean_t = (27 / 2) - offset.
_T_MEAN = (SEQUENCE_DAYS - 1) / 2.0
_T_SS = SEQUENCE_DAYS * (SEQUENCE_DAYS**2 - 1) / 12.0  # sum of (t - mean_t)^2; 1827 for 28 days


def user_features(
    daily: DataFrame,
    users: DataFrame,
    lifetime: DataFrame | None,
    ds: str,
    *,
    holiday_country: str | None = None,
    window: tuple[DataFrame, DataFrame] | None = None,
) -> DataFrame:
    """Per active user as of ``ds``: every feature of ``core.feature_catalog.FEATURES``.

    ``window``: the rolling 90-day state of ds (``features.user_window`` and ``features.user_category_window``
    rows, ``window_state``); ``daily`` must then hold the last ``RECENT_DAYS`` days (more is ignored).
    Without it, the state is built here from ``daily``, which must then hold [ds-89, ds]. ``users`` is the
    cleaned attribute snapshot of ds. ``lifetime`` is the ``features.user_lifetime`` partition of ds (None:
    built from the 90 days of ``daily``, so lifetime features show what the window shows).
    ``holiday_country`` defaults to ``SEGMENTS_HOLIDAY_COUNTRY``.
    """
    if holiday_country is None:
        from core import settings as settings_mod

        holiday_country = settings_mod.load().holiday_country
    as_of = F.to_date(F.lit(ds))
    first = shift(ds, 1 - WINDOW_DAYS)
    if window is None:
        window = window_states(daily, [ds], holiday_dates(holiday_country, first, ds))
    if lifetime is None:
        lifetime = lifetime_states(None, daily.where((F.col("ds") >= first) & (F.col("ds") <= ds)), [ds])
    state, category_state = window

    measures = _measures()
    per_user_recent, sequences = _recent_aggregates(daily, ds, as_of, measures)
    long_window = _long_window(state, as_of, measures)
    categories = _category_features(category_state, as_of)
    recent_columns = [c for c in per_user_recent.columns if c != "user_id"]
    features = (long_window.join(per_user_recent, "user_id", "left").join(sequences, "user_id", "left")
                .join(categories, "user_id", "left")).select(
        *long_window.columns,
        *[F.coalesce(F.col(c), F.lit(0.0)).alias(c) for c in recent_columns],  # nothing in the recent days
        *[F.coalesce(F.col(f"_distinct_categories_{w}d"), F.lit(0.0)).alias(f"distinct_categories_{w}d")
          for w in FEATURE_WINDOWS],
        *[F.coalesce(F.col(channel), F.array(*[F.lit(0.0)] * SEQUENCE_DAYS)).alias(channel)
          for channel, _, _, _ in SEQUENCE_SOURCES],
        F.col("_device").alias("device"),
        F.coalesce(F.col("_category_entropy"), F.lit(0.0)).alias("_category_entropy"),
        F.coalesce(F.col("_top_category"), F.lit(UNKNOWN)).alias("_top_category"),
    )
    result = _with_ratios(features).join(_attributes(users, as_of), "user_id", "left")
    result = _with_lifetime(result, lifetime, as_of, f"{PATTERN_WINDOW}d")
    result = result.fillna(UNKNOWN, subset=["gender", "occupation", "city_tier", "device", "age_bucket"])
    result = result.withColumn("ds", F.lit(ds))
    return result.drop(*[c for c in result.columns if c.startswith("_")])


def without_absent(features: DataFrame, raw_tables: tuple[str, ...]) -> DataFrame:
    """The features a shop without their source table cannot have set to null (not zeros, which would
    tell the model that nobody ever viewed anything); see ``feature_catalog.absent``."""
    gone = {f.name for f in feature_catalog.absent(raw_tables)}
    types = dict(tables.table("features.user_features").columns)
    return features.select(*[F.lit(None).cast(SPARK_TYPES[types[c]]).alias(c) if c in gone else F.col(c)
                             for c in features.columns])


def _measures() -> dict[str, tuple[Column, Column]]:
    """measure -> (its value in a user_daily row, in a user_window row): the short windows are summed from
    the recent days, the longest one read from the rolling state. Most are a column of the same name."""
    same = {m: (F.col(m), F.col(m)) for m in ("sessions", "views", "add_to_carts", "purchases", "orders",
                                             "revenue", "searches")}
    return {
        "active_days": (F.lit(1), F.col("active_days")), **same,
        "product_days": (F.col("distinct_products"), F.col("product_days")),
        "dwell_minutes": (F.col("dwell_seconds") / 60.0, F.col("dwell_seconds") / 60.0),
    }


def _recent_aggregates(daily: DataFrame, ds: str, as_of: Column, measures: dict[str, tuple[Column, Column]]
                       ) -> tuple[DataFrame, DataFrame]:
    """(per user: the short-window sums, trends and slopes; per user: the 28-day sequences and the device)
    from the user_daily rows of the last RECENT_DAYS days."""
    # String comparisons on ds: a partition filter when daily is read from the warehouse.
    recent_first = shift(ds, 1 - RECENT_DAYS)
    recent = daily.where((F.col("ds") >= recent_first) & (F.col("ds") <= ds)).select(
        "*",
        F.datediff(as_of, F.to_date("ds")).alias("offset"),  # 0 = ds itself
        (F.col("views") + F.col("searches") + F.col("add_to_carts") + F.col("purchases")).cast("double")
        .alias("activity"),
    )
    offset = F.col("offset")

    def within(days: int, value: Column) -> Column:
        return F.coalesce(F.sum(F.when(offset < days, value)), F.lit(0)).cast("double")

    recent_aggs: list[Column] = [
        within(w, daily_value).alias(f"{m}_{w}d")
        for w in FEATURE_WINDOWS if w < WINDOW_DAYS for m, (daily_value, _) in measures.items()
    ]
    recent_aggs += [
        within(RATE_WINDOW, F.col("dwell_seconds")).alias("_dwell_seconds_rw"),
        within(TREND_RECENT_DAYS, F.col("activity")).alias("_activity_recent"),
        within(SEQUENCE_DAYS, F.col("activity")).alias("_activity_seq"),
        within(TREND_RECENT_DAYS, F.col("revenue")).alias("_revenue_recent"),
        within(SEQUENCE_DAYS, F.col("revenue")).alias("_revenue_seq"),
        (within(SEQUENCE_DAYS, (F.lit(_T_MEAN) - offset) * F.col("activity")) / _T_SS).alias("activity_slope_28d"),
        (within(SEQUENCE_DAYS, (F.lit(_T_MEAN) - offset) * F.col("revenue")) / _T_SS).alias("spend_slope_28d"),
    ]
    # The recent rows are repartitioned by user_id: the per-user and the recent-days (sequences, device)
    # aggregations both keep that partitioning, so the join between them needs no further exchange.
    by_user = recent.repartition("user_id")
    return by_user.groupBy("user_id").agg(*recent_aggs), _sequences_and_device(by_user)


def _long_window(state: DataFrame, as_of: Column, measures: dict[str, tuple[Column, Column]]) -> DataFrame:
    """Per user of the rolling state: recency, the longest window's sums and the inputs of its rates."""

    def as_double(column: Column) -> Column:
        return column.cast("double")

    days = F.datediff(as_of, F.to_date("last_purchase_ds"))
    return state.select(
        "user_id",
        as_double(F.datediff(as_of, F.to_date("last_seen_ds"))).alias("recency_days"),
        # no purchase in the window: as far back as we can see
        as_double(F.coalesce(days, F.lit(WINDOW_DAYS))).alias("purchase_recency_days"),
        *[as_double(state_value).alias(f"{m}_{WINDOW_DAYS}d") for m, (_, state_value) in measures.items()],
        as_double(F.col("discount_amount")).alias("_discount_mw"),
        as_double(F.col("cancelled_orders")).alias("_cancelled_mw"),
        as_double(F.col("refunded_orders")).alias("_refunded_mw"),
        as_double(F.col("events")).alias("_events_pw"),
        *[as_double(F.col(f"events_{name}")).alias(f"_events_{name}_pw") for name, _, _ in DAYPARTS],
        as_double(F.col("events_weekend")).alias("_events_weekend_pw"),
        as_double(F.col("events_holiday")).alias("_events_holiday_pw"),
    )


def _with_ratios(features: DataFrame) -> DataFrame:
    """The rate, share and trend features from the sums (rate window r, money window m, pattern window p)."""
    r, m, p = f"{RATE_WINDOW}d", f"{MONEY_WINDOW}d", f"{PATTERN_WINDOW}d"
    all_orders_mw = F.col(f"orders_{m}") + F.col("_cancelled_mw") + F.col("_refunded_mw")
    return features.select(
        "*",
        _ratio(F.col("_dwell_seconds_rw"), F.col(f"views_{r}")).alias(f"dwell_per_view_{r}"),
        _ratio(F.col(f"add_to_carts_{r}"), F.col(f"views_{r}")).alias(f"view_to_cart_{r}"),
        _ratio(F.col(f"purchases_{r}"), F.col(f"add_to_carts_{r}")).alias(f"cart_to_purchase_{r}"),
        _ratio(F.col(f"purchases_{r}"), F.col(f"views_{r}")).alias(f"view_to_purchase_{r}"),
        _ratio(F.col(f"views_{r}"), F.col(f"searches_{r}")).alias(f"search_to_view_{r}"),
        _ratio(F.col(f"sessions_{r}"), F.col(f"active_days_{r}")).alias(f"sessions_per_active_day_{r}"),
        _ratio(F.col("_discount_mw"), F.col(f"revenue_{m}") + F.col("_discount_mw")).alias(f"discount_share_{m}"),
        _ratio(F.col(f"revenue_{m}"), F.col(f"orders_{m}")).alias(f"avg_order_value_{m}"),
        _ratio(F.col(f"revenue_{r}"), F.col(f"orders_{r}")).alias(f"avg_order_value_{r}"),
        _ratio(F.col("_cancelled_mw"), all_orders_mw).alias(f"cancel_rate_{m}"),
        _ratio(F.col("_refunded_mw"), all_orders_mw).alias(f"refund_rate_{m}"),
        *[_ratio(F.col(f"_events_{name}_pw"), F.col("_events_pw")).alias(f"share_{name}_{p}")
          for name, _, _ in DAYPARTS],
        _ratio(F.col("_events_weekend_pw"), F.col("_events_pw")).alias(f"weekend_share_{p}"),
        _ratio(F.col("_events_holiday_pw"), F.col("_events_pw")).alias(f"holiday_share_{p}"),
        _trend(F.col("_activity_recent"), F.col("_activity_seq")).alias("activity_trend"),
        _trend(F.col("_revenue_recent"), F.col("_revenue_seq")).alias("spend_trend"),
        F.col("_category_entropy").alias(f"category_entropy_{p}"),
        F.col("_top_category").alias(f"top_category_{p}"),
    )


def _attributes(users: DataFrame, as_of: Column) -> DataFrame:
    """Per user of the cleaned attribute snapshot: age, age bucket, tenure and the categorical attributes."""
    age = (F.year(as_of) - F.col("birth_year")).cast("double")
    return users.select(
        "user_id",
        age.alias("age"),
        _age_bucket(age).alias("age_bucket"),
        F.datediff(as_of, F.to_date("signup_ts")).cast("double").alias("tenure_days"),
        *[F.coalesce(F.col(c), F.lit(UNKNOWN)).alias(c) for c in ("gender", "occupation", "city_tier")],
    ).dropDuplicates(["user_id"])


def _category_features(category_state: DataFrame, as_of: Column) -> DataFrame:
    """Per user with any category event in the window: distinct categories per feature window, and over the
    pattern window (the state's 90 days) the entropy (bits) of the events per category and the top category
    (ties: smallest name).

    ``category_state`` holds ``features.user_category_window`` rows of ds. Users without category events
    get no row (the caller fills 0 / UNKNOWN).
    """
    events = F.col("events")
    age = F.datediff(as_of, F.to_date("last_seen_ds"))  # the category was seen within w days iff age < w
    # Entropy without first dividing by the user's total T: with e_i events per category,
    # -sum(p_i log2 p_i) = log2 T - sum(e_i log2 e_i) / T, so one pass gives T and the sum (no window).
    total = F.sum(events).cast("double")
    entropy = F.log2(total) - F.sum(events * F.log2(events)) / total
    return category_state.groupBy("user_id").agg(
        *[count_if(age < w).cast("double").alias(f"_distinct_categories_{w}d") for w in FEATURE_WINDOWS],
        # One category is exactly 0 (the formula could leave a rounding residue); never below 0.
        F.when(F.count("*") > 1, F.greatest(entropy, F.lit(0.0))).otherwise(F.lit(0.0))
        .alias("_category_entropy"),
        # Most events first, then the smallest name: min over (-events, name).
        F.min(F.struct((-events).alias("neg_events"), F.col("category")))["category"].alias("_top_category"),
    )


def _sequences_and_device(window: DataFrame) -> DataFrame:
    """Per user active in the last 30 days: the 28-day sequences and the device.

    - One array of 28 daily values per channel of SEQUENCE_SOURCES, by day index (0 = ds-27, the oldest ...
      27 = ds, so the LSTM reads time forward), 0 on inactive days (and for users active only on days
      ds-29 and ds-28).
    - ``_device``: the device of most active days in the last 30 (ties: the smallest name).

    Their own aggregation over the last 30 days: ``collect_list`` and ``mode`` are object-based, and in the
    main per-user aggregation they would turn all of it into Spark's slower object hash aggregate. The
    lookups by index are code-generated (no per-user lambda, which Spark interprets).
    """
    offset = F.col("offset")
    # A filter the rows already pass (DEVICE_WINDOW == RECENT_DAYS) would still be pushed below the
    # caller's repartition and cost a second scan and shuffle of the recent rows.
    recent = window.where(offset < DEVICE_WINDOW) if DEVICE_WINDOW < RECENT_DAYS else window
    by_index = recent.groupBy("user_id").agg(
        F.map_from_entries(F.collect_list(F.when(offset < SEQUENCE_DAYS, F.struct(
            (F.lit(SEQUENCE_DAYS - 1) - offset).alias("index"),
            F.struct(*[F.coalesce(F.col(column).cast("double") * scale, F.lit(0.0)).alias(channel)
                       for channel, column, scale, _ in SEQUENCE_SOURCES]).alias("values"),
        )))).alias("_by_index"),  # collect_list skips the nulls of days ds-29 and ds-28
        F.mode("device", deterministic=True).alias("_device"),  # ties: the smallest value
    )
    zero_day = F.struct(*[F.lit(0.0).alias(channel) for channel, _, _, _ in SEQUENCE_SOURCES])
    days = F.array(*[F.coalesce(F.try_element_at(F.col("_by_index"), F.lit(i)), zero_day)
                     for i in range(SEQUENCE_DAYS)])
    return by_index.select("user_id", "_device", days.alias("_days")).select(
        "user_id", "_device",
        *[F.col("_days")[channel].alias(channel) for channel, _, _, _ in SEQUENCE_SOURCES])


def _with_lifetime(features: DataFrame, lifetime: DataFrame, as_of: Column, pattern: str) -> DataFrame:
    """Join the lifetime state; without a state row, fall back to what the 90-day window shows."""
    state_cols = ["first_seen_ds", "last_purchase_ds", "lifetime_orders", "lifetime_revenue", "lifetime_active_days"]
    features = features.join(
        lifetime.select("user_id", *[F.col(c).alias(f"_lt_{c}") for c in state_cols]), "user_id", "left")
    # A user of the window missing from a stored state (the runner never writes one so): seen since the
    # window's start.
    since_first = F.coalesce(F.datediff(as_of, F.to_date("_lt_first_seen_ds")), F.lit(WINDOW_DAYS - 1))
    features = features.withColumn("days_since_first_seen", since_first.cast("double"))
    observable = F.least(F.lit(float(WINDOW_DAYS)), F.col("days_since_first_seen") + 1.0)
    never_bought = F.col("days_since_first_seen") + 1.0
    in_window = F.when(F.col("purchase_recency_days") < WINDOW_DAYS, F.col("purchase_recency_days"))
    return features.select(
        "*",
        F.coalesce(F.datediff(as_of, F.to_date("_lt_last_purchase_ds")).cast("double"), in_window, never_bought)
        .alias("lifetime_purchase_recency_days"),
        F.coalesce(F.col("_lt_lifetime_orders").cast("double"), F.col("orders_90d")).alias("lifetime_orders"),
        F.coalesce(F.col("_lt_lifetime_revenue").cast("double"), F.col("revenue_90d")).alias("lifetime_revenue"),
        F.coalesce(F.col("_lt_lifetime_active_days").cast("double"), F.col("active_days_90d"))
        .alias("lifetime_active_days"),
        F.least(F.lit(1.0), _ratio(F.col(f"active_days_{pattern}"), observable)).alias(f"active_day_ratio_{pattern}"),
    )
