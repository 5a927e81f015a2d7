"""Cleaning: raw events/orders -> rows the feature transforms can trust (pure DataFrame functions)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def clean_events(events: DataFrame) -> DataFrame:
    """Drop rows without user_id or event_ts; deduplicate by event_id (exact rows when it is null)."""
    usable = events.where(F.col("user_id").isNotNull() & F.col("event_ts").isNotNull())
    with_id = usable.where(F.col("event_id").isNotNull()).dropDuplicates(["event_id"])
    without_id = usable.where(F.col("event_id").isNull()).dropDuplicates()
    return with_id.unionByName(without_id)


def clean_orders(orders: DataFrame) -> DataFrame:
    """Drop orders without user_id; deduplicate by order_id."""
    return orders.where(F.col("user_id").isNotNull() & F.col("order_id").isNotNull()).dropDuplicates(
        ["order_id"]
    )
