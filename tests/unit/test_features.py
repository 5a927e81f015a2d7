"""Feature transforms on tiny hand-made DataFrames; each expected value is worked out in a comment."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs import build, cleaning, features
from segments import catalog

pytestmark = pytest.mark.spark

UTC = dt.timezone.utc


def ts(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def events_df(spark, rows):
    """rows: (event_id, user_id, ds, event_type, price, session_id, product, category, dwell)."""
    data = [
        (eid, uid, ts(d), etype, "p" + str(prod), cat, price, 1, sess, dwell, "mobile", d)
        for eid, uid, d, etype, price, sess, prod, cat, dwell in rows
    ]
    return spark.createDataFrame(data, catalog.table("raw.events").spark_ddl())


def orders_df(spark, rows):
    """rows: (order_id, user_id, ds, amount, discount, status)."""
    data = [(oid, uid, ts(d), amt, 1, disc, st, d) for oid, uid, d, amt, disc, st in rows]
    return spark.createDataFrame(data, catalog.table("raw.orders").spark_ddl())


def test_clean_events_drops_missing_user_and_duplicates(spark):
    df = events_df(spark, [
        ("e1", "u1", "2026-03-01", "view", 1.0, "s1", 1, "a", 5.0),
        ("e1", "u1", "2026-03-01", "view", 1.0, "s1", 1, "a", 5.0),   # duplicate event_id -> dropped
        ("e2", None, "2026-03-01", "view", 1.0, "s1", 1, "a", 5.0),   # no user -> dropped
        (None, "u2", "2026-03-01", "view", 1.0, "s9", 1, "a", 5.0),   # no id: kept once...
        (None, "u2", "2026-03-01", "view", 1.0, "s9", 1, "a", 5.0),   # ...exact duplicate dropped
        (None, "u2", "2026-03-01", "search", 0.0, "s9", 1, "a", 5.0), # no id but different row: kept
    ])
    out = cleaning.clean_events(df)
    assert out.count() == 3
    assert out.where("user_id is null").count() == 0


def test_clean_orders_dedupes_by_order_id(spark):
    df = orders_df(spark, [("o1", "u1", "2026-03-01", 10.0, 0.0, "completed")] * 2
                   + [("o2", None, "2026-03-01", 5.0, 0.0, "completed")])
    assert cleaning.clean_orders(df).count() == 1


def test_user_daily_counts_and_money(spark):
    ev = events_df(spark, [
        ("e1", "u1", "2026-03-01", "view", 10.0, "s1", 1, "shoes", 30.0),
        ("e2", "u1", "2026-03-01", "view", 20.0, "s1", 2, "shoes", 60.0),
        ("e3", "u1", "2026-03-01", "add_to_cart", 20.0, "s2", 2, "shoes", 0.0),
        ("e4", "u1", "2026-03-01", "purchase", 20.0, "s2", 2, "shoes", 0.0),
        ("e5", "u1", "2026-03-02", "search", 0.0, "s3", 3, "hats", 15.0),
    ])
    od = orders_df(spark, [
        ("o1", "u1", "2026-03-01", 18.0, 2.0, "completed"),
        ("o2", "u1", "2026-03-01", 50.0, 0.0, "cancelled"),   # not revenue
        ("o3", "u9", "2026-03-02", 7.0, 0.0, "completed"),    # order without events still gives a row
    ])
    rows = {(r.user_id, r.ds): r for r in features.user_daily(ev, od).collect()}
    d1 = rows[("u1", "2026-03-01")]
    # 2 sessions (s1, s2); views e1+e2; products {1,2}; dwell 30+60; 1 completed order of 18 with 2 off.
    assert (d1.sessions, d1.views, d1.add_to_carts, d1.purchases) == (2, 2, 1, 1)
    assert (d1.distinct_products, d1.distinct_categories, d1.dwell_seconds) == (2, 1, 90.0)
    assert (d1.orders, d1.revenue, d1.discount_amount) == (1, 18.0, 2.0)
    assert rows[("u1", "2026-03-02")].searches == 1
    u9 = rows[("u9", "2026-03-02")]
    assert (u9.views, u9.orders, u9.revenue) == (0, 1, 7.0)


def _daily(spark, rows):
    """rows: (user_id, ds, views, add_to_carts, purchases, orders, revenue, discount)."""
    t = catalog.table("features.user_daily")
    data = []
    for uid, d, views, carts, purchases, orders, revenue, discount in rows:
        data.append((uid, 1, views, 0, carts, 0, purchases, 1, 1, 60.0 * views, orders, revenue, discount,
                     "desktop", d))
    return spark.createDataFrame(data, t.spark_ddl())


def _users(spark, rows):
    data = [(uid, ts(signup), by, g, None, None, "2026-03-28") for uid, signup, by, g in rows]
    return spark.createDataFrame(data, catalog.table("raw.users").spark_ddl())


def test_user_features_windows_rates_and_sequence(spark):
    ds = "2026-03-28"
    daily = _daily(spark, [
        # u1: active on ds (offset 0), 10 days before (offset 10) and 60 days before (offset 60).
        ("u1", "2026-03-28", 4, 2, 1, 1, 30.0, 10.0),
        ("u1", "2026-03-18", 6, 0, 0, 0, 0.0, 0.0),
        ("u1", "2026-01-27", 10, 5, 2, 2, 70.0, 0.0),
        ("u1", "2026-03-29", 99, 9, 9, 9, 999.0, 0.0),  # after ds: must be ignored (point in time)
        ("u1", "2025-12-01", 99, 9, 9, 9, 999.0, 0.0),  # older than 90 days: ignored
        # u2: only active 27 days before ds -> first element of its sequence.
        ("u2", "2026-03-01", 3, 0, 0, 0, 0.0, 0.0),
    ])
    users = _users(spark, [("u1", "2025-03-28", 1996, "f")])  # u2 has no attributes
    rows = {r.user_id: r for r in features.user_features(daily, users, ds).collect()}
    assert set(rows) == {"u1", "u2"}
    u1, u2 = rows["u1"], rows["u2"]
    assert u1.recency_days == 0 and u1.purchase_recency_days == 0
    # 7d: only ds (4 views); 30d: ds + offset 10 (4+6); 90d: + offset 60 (20).
    assert (u1.views_7d, u1.views_30d, u1.views_90d) == (4, 10, 20)
    assert (u1.active_days_7d, u1.active_days_30d, u1.active_days_90d) == (1, 2, 3)
    assert u1.revenue_90d == 100.0 and u1.orders_90d == 3
    assert u1.view_to_cart_30d == pytest.approx(2 / 10)
    assert u1.cart_to_purchase_30d == pytest.approx(1 / 2)
    assert u1.discount_share_90d == pytest.approx(10 / 110)  # discount / (revenue + discount)
    assert u1.avg_order_value_90d == pytest.approx(100 / 3)
    assert u1.dwell_per_view_30d == pytest.approx(60.0)
    # Age: 2026 - 1996; tenure: one year (365 days).
    assert (u1.age, u1.tenure_days, u1.gender, u1.occupation) == (30.0, 365.0, "f", "unknown")
    # Sequence, oldest first: ds is the last element, offset 10 is index 17.
    assert len(u1.seq_views) == 28 and u1.seq_views[27] == 4 and u1.seq_views[17] == 6
    assert sum(u1.seq_views) == 10
    # u2: 27 days ago -> index 0; never purchased -> purchase recency = the 90-day horizon.
    assert u2.seq_views[0] == 3 and sum(u2.seq_views) == 3
    assert u2.recency_days == 27 and u2.purchase_recency_days == 90
    assert u2.gender == "unknown" and u2.age is None


def test_trend_separates_fading_from_ramping(spark):
    ds = "2026-03-28"
    # Same total activity (12 views) over 28 days: 'fading' early, 'ramping' in the last week.
    daily = _daily(spark, [
        ("fading", "2026-03-02", 6, 0, 0, 0, 0.0, 0.0),
        ("fading", "2026-03-05", 6, 0, 0, 0, 0.0, 0.0),
        ("ramping", "2026-03-25", 6, 0, 0, 0, 0.0, 0.0),
        ("ramping", "2026-03-27", 6, 0, 0, 0, 0.0, 0.0),
    ])
    rows = {r.user_id: r for r in features.user_features(daily, _users(spark, []), ds).collect()}
    assert sum(rows["fading"].seq_views) == sum(rows["ramping"].seq_views) == 12
    assert rows["fading"].activity_trend < 0 < rows["ramping"].activity_trend


def test_user_features_conforms_to_catalog(spark):
    daily = _daily(spark, [("u1", "2026-03-28", 1, 0, 0, 0, 0.0, 0.0)])
    out = features.user_features(daily, _users(spark, []), "2026-03-28")
    conformed = catalog.conform(out, "features.user_features")
    assert conformed.columns == catalog.table("features.user_features").all_columns()


def test_window_dates_is_inclusive_and_ordered():
    dates = build.window_dates("2026-03-28", 3)
    assert dates == ["2026-03-26", "2026-03-27", "2026-03-28"]


def test_segment_profiles_sizes_shares_and_means(spark):
    from jobs.profiles import segment_profiles

    seg_ddl = catalog.table("segments.user_segments").spark_ddl()
    segments = spark.createDataFrame([
        ("u1", 0, "loyal", 0.9, [0.9, 0.1], "m", "1", "2026-03-28"),
        ("u2", 0, "loyal", 0.7, [0.7, 0.3], "m", "1", "2026-03-28"),
        ("u3", 1, "occasional", 0.6, [0.4, 0.6], "m", "1", "2026-03-28"),
    ], seg_ddl)
    daily = _daily(spark, [
        ("u1", "2026-03-28", 1, 0, 1, 1, 100.0, 0.0),
        ("u2", "2026-03-28", 1, 0, 1, 1, 50.0, 0.0),
        ("u3", "2026-03-28", 1, 0, 0, 0, 0.0, 0.0),
    ])
    feats = features.user_features(daily, _users(spark, []), "2026-03-28")
    rows = {r.segment_id: r for r in segment_profiles(segments, feats).collect()}
    # Segment 0: two of three users; mean revenue (100 + 50) / 2; mean confidence (0.9 + 0.7) / 2.
    assert rows[0].users == 2 and rows[0].share == pytest.approx(2 / 3)
    assert rows[0].avg_revenue_90d == pytest.approx(75.0)
    assert rows[0].avg_confidence == pytest.approx(0.8)
    assert rows[1].users == 1 and rows[1].avg_revenue_90d == 0.0
    assert catalog.conform(segment_profiles(segments, feats), "segments.segment_profiles").count() == 2
