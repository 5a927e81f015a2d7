"""Feature engineering: raw events/orders/users -> features.user_daily -> features.user_features.

The transforms are pure ``DataFrame -> DataFrame`` functions (no session, no paths). Cleaning lives in
``jobs.cleaning``; ``jobs.build.build_features`` is the thin runner that reads and writes through the catalog.

Policies (documented in the README's table list):
- cleaning: rows without user_id or event_ts are dropped; events are deduplicated by event_id
  (exact duplicates when event_id is missing); orders by order_id. Only completed orders count as
  revenue.
- a day's ``user_daily`` row is built from that day's raw partition.
- ``user_features`` as of ds uses only ``user_daily`` rows with ds in [ds-89, ds], so nothing after
  the logical date can leak in. A user is "active" (gets a row) with any activity in those 90 days.
"""

from __future__ import annotations


from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segments.catalog import SEQUENCE_CHANNELS, UNKNOWN, WINDOWED_MEASURES
from segments.settings import FEATURE_WINDOWS, SEQUENCE_DAYS


LOOKBACK_DAYS = max(FEATURE_WINDOWS)  # 90: the longest window decides which daily partitions we need

# Sequence channel -> user_daily column and scale (per day). Order is the contract in
# catalog.SEQUENCE_CHANNELS.
_SEQUENCE_SOURCES: dict[str, tuple[str, float]] = {
    "seq_sessions": ("sessions", 1.0),
    "seq_views": ("views", 1.0),
    "seq_searches": ("searches", 1.0),
    "seq_add_to_carts": ("add_to_carts", 1.0),
    "seq_purchases": ("purchases", 1.0),
    "seq_revenue": ("revenue", 1.0),
    "seq_dwell_minutes": ("dwell_seconds", 1 / 60),
}
assert tuple(_SEQUENCE_SOURCES) == SEQUENCE_CHANNELS, "sequence channels drifted from the catalog"


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0 when the denominator is 0 (ANSI mode would raise)."""
    return F.coalesce(F.try_divide(numerator, denominator), F.lit(0.0))


def user_daily(events: DataFrame, orders: DataFrame) -> DataFrame:
    """One row per (user_id, ds) with activity: event counts by type, dwell, and completed orders."""

    def n(event_type: str) -> Column:
        return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0)).cast("long")

    activity = events.groupBy("user_id", "ds").agg(
        F.countDistinct("session_id").alias("sessions"),
        n("view").alias("views"),
        n("search").alias("searches"),
        n("add_to_cart").alias("add_to_carts"),
        n("remove_from_cart").alias("remove_from_carts"),
        n("purchase").alias("purchases"),
        F.countDistinct("product_id").alias("distinct_products"),
        F.countDistinct("category").alias("distinct_categories"),
        F.coalesce(F.sum("dwell_seconds"), F.lit(0.0)).alias("dwell_seconds"),
        F.mode("device").alias("device"),
    )
    completed = F.col("status") == "completed"
    money = orders.groupBy("user_id", "ds").agg(
        F.sum(F.when(completed, 1).otherwise(0)).cast("long").alias("orders"),
        F.sum(F.when(completed, F.col("amount")).otherwise(0.0)).alias("revenue"),
        F.sum(F.when(completed, F.col("discount_amount")).otherwise(0.0)).alias("discount_amount"),
    )
    counts = ["sessions", "views", "searches", "add_to_carts", "remove_from_carts", "purchases",
              "distinct_products", "distinct_categories", "orders"]
    joined = activity.join(money, ["user_id", "ds"], "full_outer")
    return joined.fillna(0, subset=counts).fillna(0.0, subset=["dwell_seconds", "revenue", "discount_amount"])


def user_features(daily: DataFrame, users: DataFrame, ds: str) -> DataFrame:
    """Per active user as of ``ds``: windowed aggregates, rates, trends, static attributes, sequences.

    ``daily`` may hold any days; only [ds-89, ds] is used. ``users`` is the attribute snapshot of ds.
    """
    as_of = F.to_date(F.lit(ds))
    day_offset = F.datediff(as_of, F.to_date("ds"))  # 0 = ds itself
    window = daily.withColumn("offset", day_offset).where(
        (F.col("offset") >= 0) & (F.col("offset") < LOOKBACK_DAYS)
    )
    activity = F.col("views") + F.col("searches") + F.col("add_to_carts") + F.col("purchases")
    window = window.withColumn("activity", activity.cast("double"))

    def within(days: int, value: Column) -> Column:
        return F.sum(F.when(F.col("offset") < days, value).otherwise(0))

    aggs: list[Column] = [
        F.min("offset").cast("double").alias("recency_days"),
        F.coalesce(
            F.min(F.when((F.col("purchases") > 0) | (F.col("orders") > 0), F.col("offset"))),
            F.lit(LOOKBACK_DAYS),  # no purchase in the window: as far back as we can see
        ).cast("double").alias("purchase_recency_days"),
    ]
    for w in FEATURE_WINDOWS:
        for measure in WINDOWED_MEASURES:
            value = F.lit(1) if measure == "active_days" else F.col(measure)
            aggs.append(within(w, value).cast("double").alias(f"{measure}_{w}d"))
    aggs += [
        within(30, F.col("dwell_seconds")).alias("_dwell_30d"),
        within(90, F.col("discount_amount")).alias("_discount_90d"),
        within(7, F.col("activity")).alias("_activity_7d"),
        within(28, F.col("activity")).alias("_activity_28d"),
        within(7, F.col("revenue")).alias("_revenue_7d"),
        within(28, F.col("revenue")).alias("_revenue_28d"),
        F.mode(F.when(F.col("offset") < 30, F.col("device"))).alias("device"),
    ]
    # Sequence: day index 0 = ds-27 (oldest) ... 27 = ds, so the LSTM reads time forward.
    in_sequence = F.col("offset") < SEQUENCE_DAYS
    day_index = F.lit(SEQUENCE_DAYS - 1) - F.col("offset")
    for channel, (column, scale) in _SEQUENCE_SOURCES.items():
        source = F.col(column).cast("double") * scale
        aggs.append(F.map_from_entries(F.collect_list(F.when(in_sequence, F.struct(day_index, source))))
                    .alias(f"_map_{channel}"))

    per_user = window.groupBy("user_id").agg(*aggs)

    def trend(last7: str, last28: str) -> Column:
        # log of the last 7 days' daily rate over the 21 days before: >0 ramping up, <0 fading.
        before = (F.col(last28) - F.col(last7)) / 21.0
        return F.log((1.0 + F.col(last7) / 7.0) / (1.0 + before))

    def as_array(channel: str) -> Column:
        m = F.col(f"_map_{channel}")
        return F.transform(
            F.sequence(F.lit(0), F.lit(SEQUENCE_DAYS - 1)),
            lambda i: F.coalesce(F.try_element_at(m, i), F.lit(0.0)),
        )

    features = per_user.select(
        "*",
        _ratio(F.col("_dwell_30d"), F.col("views_30d")).alias("dwell_per_view_30d"),
        _ratio(F.col("add_to_carts_30d"), F.col("views_30d")).alias("view_to_cart_30d"),
        _ratio(F.col("purchases_30d"), F.col("add_to_carts_30d")).alias("cart_to_purchase_30d"),
        _ratio(F.col("_discount_90d"), F.col("revenue_90d") + F.col("_discount_90d")).alias("discount_share_90d"),
        _ratio(F.col("revenue_90d"), F.col("orders_90d")).alias("avg_order_value_90d"),
        trend("_activity_7d", "_activity_28d").alias("activity_trend"),
        trend("_revenue_7d", "_revenue_28d").alias("spend_trend"),
        *[as_array(c).alias(c) for c in SEQUENCE_CHANNELS],
    )

    attributes = users.select(
        "user_id",
        (F.year(as_of) - F.col("birth_year")).cast("double").alias("age"),
        F.datediff(as_of, F.to_date("signup_ts")).cast("double").alias("tenure_days"),
        *[F.coalesce(F.col(c), F.lit(UNKNOWN)).alias(c) for c in ("gender", "occupation", "city_tier")],
    ).dropDuplicates(["user_id"])

    result = features.join(attributes, "user_id", "left").select(
        "*",
        F.lit(ds).alias("ds"),
    )
    return result.fillna(UNKNOWN, subset=["gender", "occupation", "city_tier", "device"]).drop(
        *[c for c in result.columns if c.startswith("_")]
    )
