"""jobs/features/user_features.py on tiny hand-made user_daily rows; each expected value is worked out in a
comment.

One test (or more) per feature family of ``core.feature_catalog``: activity, money, rates, recency /
RFM, time patterns, trend, diversity, static, lifetime, the sequence; plus point in time and every
catalogued feature being produced.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from core import tables, warehouse
from jobs.features import user_features
from tests.unit.builders import DS, daily_df, users_df


def _lifetime(spark, rows):
    """rows: (user_id, first_seen_ds, last_purchase_ds, lifetime_orders, lifetime_revenue, active_days)."""
    data = [(uid, first, DS, None, last_buy, orders, revenue, days, DS)
            for uid, first, last_buy, orders, revenue, days in rows]
    return spark.createDataFrame(data, tables.table("features.user_lifetime").spark_ddl())


def _features(spark, daily_rows, users=(), lifetime=None, ds=DS, country="US"):
    out = user_features.user_features(daily_df(spark, daily_rows), users_df(spark, list(users)),
                                      _lifetime(spark, lifetime) if lifetime is not None else None, ds,
                                      holiday_country=country)
    return {r.user_id: r for r in out.collect()}


def _day(offset: int, ds: str = DS) -> str:
    return (dt.date.fromisoformat(ds) - dt.timedelta(days=offset)).isoformat()


# --- activity, money, rates, recency, sequence ------------------------------------------------------
@pytest.mark.spark
def test_windows_money_rates_recency_and_sequence(spark):
    rows = _features(spark, [
        # u1: active on ds (offset 0), 10 days before and 60 days before.
        {"user_id": "u1", "ds": DS, "views": 4, "add_to_carts": 2, "purchases": 1, "orders": 1, "revenue": 30.0,
         "discount_amount": 10.0, "searches": 2, "sessions": 2, "dwell_seconds": 240.0, "distinct_products": 3,
         "cancelled_orders": 1},
        {"user_id": "u1", "ds": _day(10), "views": 6, "dwell_seconds": 120.0, "distinct_products": 3},
        {"user_id": "u1", "ds": _day(60), "views": 10, "add_to_carts": 5, "purchases": 2, "orders": 2,
         "revenue": 70.0, "refunded_orders": 1},
        # after ds and older than 90 days: ignored (point in time / window)
        {"user_id": "u1", "ds": "2026-03-29", "views": 99, "orders": 9, "revenue": 999.0},
        {"user_id": "u1", "ds": "2025-12-01", "views": 99, "orders": 9, "revenue": 999.0},
        # u2: only active 27 days before ds -> first element of its sequence.
        {"user_id": "u2", "ds": _day(27), "views": 3},
    ], users=[("u1", "2025-03-28", 1996, "f")])
    assert set(rows) == {"u1", "u2"}
    u1, u2 = rows["u1"], rows["u2"]
    assert u1.recency_days == 0 and u1.purchase_recency_days == 0
    # 7d: only ds (4 views); 30d: ds + offset 10 (4+6); 90d: + offset 60 (20).
    assert (u1.views_7d, u1.views_30d, u1.views_90d) == (4, 10, 20)
    assert (u1.active_days_7d, u1.active_days_30d, u1.active_days_90d) == (1, 2, 3)
    assert (u1.searches_7d, u1.sessions_30d, u1.sessions_90d) == (2, 3, 4)  # sessions default 1 per day
    assert (u1.product_days_7d, u1.product_days_30d, u1.product_days_90d) == (3, 6, 7)
    assert u1.dwell_minutes_30d == pytest.approx(6.0)  # (240 + 120) s
    # Money: RFM frequency/monetary per window; AOV = revenue / completed orders.
    assert (u1.orders_7d, u1.orders_90d, u1.revenue_30d, u1.revenue_90d) == (1, 3, 30.0, 100.0)
    assert u1.avg_order_value_90d == pytest.approx(100 / 3) and u1.avg_order_value_30d == pytest.approx(30.0)
    assert u1.discount_share_90d == pytest.approx(10 / 110)  # discount / (revenue + discount)
    # 3 completed + 1 cancelled + 1 refunded orders in 90 days.
    assert u1.cancel_rate_90d == pytest.approx(1 / 5) and u1.refund_rate_90d == pytest.approx(1 / 5)
    # Rates over 30 days: views 10, carts 2, purchases 1, searches 2, dwell 360 s, 3 sessions on 2 days.
    assert u1.view_to_cart_30d == pytest.approx(2 / 10)
    assert u1.cart_to_purchase_30d == pytest.approx(1 / 2)
    assert u1.view_to_purchase_30d == pytest.approx(1 / 10)
    assert u1.search_to_view_30d == pytest.approx(10 / 2)
    assert u1.dwell_per_view_30d == pytest.approx(36.0)
    assert u1.sessions_per_active_day_30d == pytest.approx(3 / 2)
    # Sequence, oldest first: ds is the last element, offset 10 is index 17.
    assert len(u1.seq_views) == 28 and u1.seq_views[27] == 4 and u1.seq_views[17] == 6
    assert sum(u1.seq_views) == 10 and u1.seq_dwell_minutes[27] == pytest.approx(4.0)
    # u2: 27 days ago -> index 0; never purchased -> purchase recency = the 90-day horizon; ratios 0.
    assert u2.seq_views[0] == 3 and sum(u2.seq_views) == 3
    assert u2.recency_days == 27 and u2.purchase_recency_days == 90
    assert u2.view_to_cart_30d == 0.0 and u2.avg_order_value_90d == 0.0 and u2.cancel_rate_90d == 0.0


# --- time patterns ---------------------------------------------------------------------------------
@pytest.mark.spark
def test_time_of_day_weekend_and_holiday_shares(spark):
    # ds 2026-03-28 is a Saturday; 2026-01-01 (a Thursday) is a US public holiday (New Year's Day),
    # 2026-03-25 a plain Wednesday.
    rows = _features(spark, [
        {"user_id": "u1", "ds": DS, "views": 4, "events_night": 1, "events_morning": 1, "events_afternoon": 2},
        {"user_id": "u1", "ds": "2026-01-01", "views": 2, "events_afternoon": 0, "events_evening": 2},
        {"user_id": "u1", "ds": "2026-03-25", "views": 2, "events_afternoon": 2},
        {"user_id": "u2", "ds": DS, "views": 0, "orders": 1, "revenue": 5.0},  # no events at all
    ])
    u1 = rows["u1"]
    # 8 events: night 1, morning 1, afternoon 2 + 2, evening 2.
    assert (u1.share_night_90d, u1.share_morning_90d) == (pytest.approx(1 / 8), pytest.approx(1 / 8))
    assert (u1.share_afternoon_90d, u1.share_evening_90d) == (pytest.approx(4 / 8), pytest.approx(2 / 8))
    assert u1.weekend_share_90d == pytest.approx(4 / 8)  # only ds is a weekend day
    assert u1.holiday_share_90d == pytest.approx(2 / 8)  # New Year's Day
    # No lifetime state: first seen = the oldest active day in the window (2026-01-01, 86 days ago),
    # so 87 observable days and 3 active ones.
    assert u1.days_since_first_seen == 86 and u1.active_day_ratio_90d == pytest.approx(3 / 87)
    u2 = rows["u2"]
    assert (u2.share_night_90d, u2.weekend_share_90d, u2.holiday_share_90d) == (0.0, 0.0, 0.0)
    # Another country: 2026-01-01 is a holiday almost everywhere, 2026-03-25 is Greek Independence Day.
    gr = _features(spark, [{"user_id": "u1", "ds": "2026-03-25", "views": 2},
                           {"user_id": "u1", "ds": "2026-03-24", "views": 2}], country="GR")
    assert gr["u1"].holiday_share_90d == pytest.approx(2 / 4)


# --- trend -----------------------------------------------------------------------------------------
@pytest.mark.spark
def test_trend_and_slope_separate_fading_from_ramping(spark):
    # Same total activity (12 views) over 28 days: 'fading' early, 'ramping' in the last week.
    rows = _features(spark, [
        {"user_id": "fading", "ds": "2026-03-02", "views": 6},
        {"user_id": "fading", "ds": "2026-03-05", "views": 6},
        {"user_id": "ramping", "ds": "2026-03-25", "views": 6},
        {"user_id": "ramping", "ds": "2026-03-27", "views": 6},
        {"user_id": "one_day", "ds": DS, "views": 2, "revenue": 10.0, "orders": 1},
    ])
    fading, ramping = rows["fading"], rows["ramping"]
    assert sum(fading.seq_views) == sum(ramping.seq_views) == 12
    assert fading.activity_trend < 0 < ramping.activity_trend
    assert fading.activity_slope_28d < 0 < ramping.activity_slope_28d
    # Slope = sum((t - 13.5) * y_t) / 1827 with t = 27 on ds: 2 views -> 13.5 * 2 / 1827;
    # trend = log((1 + 2/7) / (1 + 0/21)).
    one = rows["one_day"]
    assert one.activity_slope_28d == pytest.approx(13.5 * 2 / 1827)
    assert one.spend_slope_28d == pytest.approx(13.5 * 10 / 1827)
    assert one.activity_trend == pytest.approx(math.log(1 + 2 / 7))


# --- diversity -------------------------------------------------------------------------------------
@pytest.mark.spark
def test_category_entropy_top_category_and_window_distincts(spark):
    rows = _features(spark, [
        {"user_id": "u1", "ds": DS, "views": 2, "category_events": {"b": 2}},
        {"user_id": "u1", "ds": _day(3), "views": 2, "category_events": {"a": 1, "b": 1}},
        {"user_id": "u1", "ds": _day(40), "views": 4, "category_events": {"a": 3, "c": 1}},
        {"user_id": "single", "ds": DS, "views": 5, "category_events": {"z": 5}},
        {"user_id": "none", "ds": DS, "views": 0, "orders": 1, "category_events": {}},
    ])
    u1 = rows["u1"]
    # 90 days: a 4, b 3, c 1 of 8 -> H = -(.5 log2 .5 + .375 log2 .375 + .125 log2 .125) bits.
    expected = -sum(p * math.log2(p) for p in (4 / 8, 3 / 8, 1 / 8))
    assert u1.category_entropy_90d == pytest.approx(expected)
    assert u1.top_category_90d == "a"
    # 7d: {a, b}; 30d: {a, b}; 90d: {a, b, c}.
    assert (u1.distinct_categories_7d, u1.distinct_categories_30d, u1.distinct_categories_90d) == (2, 2, 3)
    assert rows["single"].category_entropy_90d == 0.0 and rows["single"].top_category_90d == "z"
    assert rows["none"].category_entropy_90d == 0.0 and rows["none"].top_category_90d == "unknown"
    # A tie (a 1, b 1) -> the alphabetically first.
    tie = _features(spark, [{"user_id": "t", "ds": DS, "views": 2, "category_events": {"b": 1, "a": 1}}])
    assert tie["t"].top_category_90d == "a" and tie["t"].category_entropy_90d == pytest.approx(1.0)


# --- static ----------------------------------------------------------------------------------------
@pytest.mark.spark
def test_static_attributes_age_bucket_and_unknowns(spark):
    rows = _features(spark, [
        {"user_id": "u1", "ds": DS, "views": 1},
        {"user_id": "u2", "ds": DS, "views": 1},
        {"user_id": "u3", "ds": DS, "views": 1},
        {"user_id": "u4", "ds": DS, "views": 1},
    ], users=[("u1", "2025-03-28", 1996, "f"), ("u2", "2026-03-01", 2002, None),
              ("u3", "2020-01-01", 1961, "m")])  # u4 has no attributes row
    u1, u2, u3, u4 = (rows[u] for u in ("u1", "u2", "u3", "u4"))
    # Age = 2026 - birth year: 30 -> 25_34, 24 -> under_25, 65 -> 65_plus. Tenure: one year = 365 days.
    assert (u1.age, u1.age_bucket, u1.tenure_days, u1.gender, u1.occupation) == (30.0, "25_34", 365.0, "f", "unknown")
    assert (u2.age_bucket, u2.gender, u2.tenure_days) == ("under_25", "unknown", 27.0)
    assert u3.age_bucket == "65_plus"
    assert u4.age is None and u4.age_bucket == "unknown" and u4.gender == "unknown" and u4.device == "desktop"


# --- lifetime --------------------------------------------------------------------------------------
@pytest.mark.spark
def test_lifetime_features_are_exact_beyond_the_window(spark):
    daily = [
        {"user_id": "old", "ds": _day(5), "views": 3},
        {"user_id": "new", "ds": _day(9), "views": 1},
        {"user_id": "new", "ds": _day(0), "views": 1, "orders": 1, "revenue": 20.0},
        {"user_id": "nobuy", "ds": _day(2), "views": 1},
    ]
    lifetime = [
        # first seen 400 days ago, last order 200 days ago: outside the 90-day window.
        ("old", _day(400), _day(200), 12, 640.0, 150),
        ("new", _day(9), DS, 1, 20.0, 2),
        ("nobuy", _day(30), None, 0, 0.0, 4),
    ]
    rows = _features(spark, daily, lifetime=lifetime)
    old, new, nobuy = rows["old"], rows["new"], rows["nobuy"]
    assert old.purchase_recency_days == 90  # the window cannot see the order...
    assert old.lifetime_purchase_recency_days == 200  # ...the lifetime state can
    assert (old.days_since_first_seen, old.lifetime_orders, old.lifetime_revenue, old.lifetime_active_days) == (
        400, 12, 640.0, 150)
    assert old.active_day_ratio_90d == pytest.approx(1 / 90)  # 1 active day of 90 observable
    # Seen first 9 days ago: 10 observable days, 2 active -> 0.2.
    assert (new.days_since_first_seen, new.lifetime_purchase_recency_days) == (9, 0)
    assert new.active_day_ratio_90d == pytest.approx(2 / 10)
    # Never bought: recency = days since first seen + 1 (longer ago than anything observed).
    assert (nobuy.days_since_first_seen, nobuy.lifetime_purchase_recency_days) == (30, 31)


# --- point in time and the contract ------------------------------------------------------------------
@pytest.mark.spark
def test_rows_after_ds_do_not_change_the_features(spark):
    base = [{"user_id": "u1", "ds": _day(k), "views": k + 1, "orders": k % 2, "revenue": 5.0 * k} for k in range(0, 40, 3)]
    later = [{"user_id": "u1", "ds": "2026-03-29", "views": 50, "orders": 3, "revenue": 500.0},
             {"user_id": "u2", "ds": "2026-04-02", "views": 5}]
    before, after = _features(spark, base), _features(spark, base + later)
    assert set(after) == {"u1"} and before["u1"].asDict() == after["u1"].asDict()


@pytest.mark.spark
def test_every_catalogued_feature_is_produced(spark):
    out = user_features.user_features(daily_df(spark, [{"user_id": "u1", "ds": DS, "views": 1}]),
                                      users_df(spark, []), None, DS)
    expected = [c for c in tables.table("features.user_features").all_columns()]
    assert sorted(out.columns) == sorted(expected)  # nothing missing, nothing undeclared
    assert warehouse.conform(out, "features.user_features").columns == expected
