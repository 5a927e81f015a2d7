"""Tiny hand-made Spark frames shared by the feature tests (user_features, window_state, profiles)."""

from __future__ import annotations

import datetime as dt

from core import tables

UTC = dt.timezone.utc
DS = "2026-03-28"  # a Saturday; the 90-day window is [2025-12-29, 2026-03-28]


def ts(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


_DAILY_DEFAULTS = {
    "sessions": 1, "views": 0, "searches": 0, "add_to_carts": 0, "remove_from_carts": 0, "purchases": 0,
    "distinct_products": 1, "distinct_categories": 1, "dwell_seconds": 0.0, "orders": 0, "revenue": 0.0,
    "discount_amount": 0.0, "device": "desktop", "events": None, "events_night": 0, "events_morning": 0,
    "events_afternoon": None, "events_evening": 0, "cancelled_orders": 0, "refunded_orders": 0,
    "category_events": None,
}


def daily_df(spark, rows):
    """features.user_daily rows: dicts with user_id, ds and any user_daily column (defaults above).

    By default events = views + searches + add_to_carts + purchases, all in the afternoon, and the
    category map is {"a": events}.
    """
    table = tables.table("features.user_daily")
    data = []
    for row in rows:
        r = dict(_DAILY_DEFAULTS) | row
        if r["events"] is None:
            r["events"] = r["views"] + r["searches"] + r["add_to_carts"] + r["purchases"]
        if r["events_afternoon"] is None:
            r["events_afternoon"] = r["events"]
        if r["category_events"] is None:
            r["category_events"] = {"a": r["events"]} if r["events"] else {}
        data.append(tuple(r[c] for c in table.column_names) + (r["ds"],))
    return spark.createDataFrame(data, table.spark_ddl())


def users_df(spark, rows):
    """raw.users rows of the snapshot DS: (user_id, signup day, birth_year, gender)."""
    data = [(uid, ts(signup), by, g, None, None, DS) for uid, signup, by, g in rows]
    return spark.createDataFrame(data, tables.table("raw.users").spark_ddl())
