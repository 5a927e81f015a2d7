"""jobs/features/user_daily.py on tiny hand-made raw events and orders; expected values worked out in
comments."""

from __future__ import annotations

import pytest

from core import tables, warehouse
from jobs.features import user_daily
from tests.unit.builders import ts

pytestmark = pytest.mark.spark


def events_df(spark, rows, hours=None, devices=None):
    """rows: (event_id, user_id, ds, event_type, price, session_id, product, category, dwell)."""
    data = []
    for i, (eid, uid, d, etype, price, sess, prod, cat, dwell) in enumerate(rows):
        hour = hours[i] if hours else 12
        device = devices[i] if devices else "mobile"
        product = None if prod is None else "p" + str(prod)
        data.append((eid, uid, ts(d, hour), etype, product, cat, price, 1, sess, dwell, device, d))
    return spark.createDataFrame(data, tables.table("raw.events").spark_ddl())


def orders_df(spark, rows):
    """rows: (order_id, user_id, ds, amount, discount, status)."""
    data = [(oid, uid, ts(d), amt, 1, disc, st, d) for oid, uid, d, amt, disc, st in rows]
    return spark.createDataFrame(data, tables.table("raw.orders").spark_ddl())


def test_user_daily_counts_money_and_distincts(spark):
    ev = events_df(spark, [
        ("e1", "u1", "2026-03-01", "view", 10.0, "s1", 1, "shoes", 30.0),
        ("e2", "u1", "2026-03-01", "view", 20.0, "s1", 2, "shoes", 60.0),
        ("e3", "u1", "2026-03-01", "add_to_cart", 20.0, "s2", 2, "shoes", 0.0),
        ("e4", "u1", "2026-03-01", "purchase", 20.0, "s2", 2, "shoes", 0.0),
        ("e5", "u1", "2026-03-01", "search", 0.0, "s2", None, "hats", 0.0),
        ("e6", "u1", "2026-03-02", "search", 0.0, "s3", None, "hats", 15.0),
    ])
    od = orders_df(spark, [
        ("o1", "u1", "2026-03-01", 18.0, 2.0, "completed"),
        ("o2", "u1", "2026-03-01", 50.0, 9.0, "cancelled"),   # not revenue, counted as cancelled
        ("o3", "u1", "2026-03-01", 30.0, 0.0, "refunded"),    # not revenue, counted as refunded
        ("o4", "u9", "2026-03-02", 7.0, 0.0, "completed"),    # order without events still gives a row
    ])
    rows = {(r.user_id, r.ds): r for r in user_daily.user_daily(ev, od).collect()}
    d1 = rows[("u1", "2026-03-01")]
    # 2 sessions (s1, s2); views e1+e2; products {p1, p2} (the search has none); dwell 30+60.
    assert (d1.sessions, d1.views, d1.searches, d1.add_to_carts, d1.purchases) == (2, 2, 1, 1, 1)
    assert (d1.distinct_products, d1.dwell_seconds, d1.events) == (2, 90.0, 5)
    # Only o1 is revenue (18 with 2 off); o2 cancelled, o3 refunded.
    assert (d1.orders, d1.revenue, d1.discount_amount) == (1, 18.0, 2.0)
    assert (d1.cancelled_orders, d1.refunded_orders) == (1, 1)
    # Categories: shoes x4 (e1-e4), hats x1 (e5) -> 2 distinct.
    assert d1.category_events == {"shoes": 4, "hats": 1} and d1.distinct_categories == 2
    assert rows[("u1", "2026-03-02")].searches == 1
    u9 = rows[("u9", "2026-03-02")]
    # Orders only: every event count is 0, no device, no categories.
    assert (u9.views, u9.sessions, u9.events, u9.orders, u9.revenue) == (0, 0, 0, 1, 7.0)
    assert u9.device is None and u9.category_events == {} and u9.distinct_categories == 0
    assert warehouse.conform(user_daily.user_daily(ev, od), "features.user_daily").count() == 3


def test_user_daily_time_of_day_buckets_and_main_device(spark):
    day = "2026-03-01"
    ev = events_df(spark, [(f"e{i}", "u1", day, "view", 1.0, "s1", i, "a", 0.0) for i in range(6)],
                   # UTC hours: 0 and 5 -> night [0,6); 6 -> morning; 12 and 17 -> afternoon; 23 -> evening.
                   hours=[0, 5, 6, 12, 17, 23],
                   # desktop x3, mobile x3: a tie -> the alphabetically first, desktop.
                   devices=["mobile", "desktop", "mobile", "desktop", "mobile", "desktop"])
    r = user_daily.user_daily(ev, orders_df(spark, [])).collect()[0]
    assert (r.events_night, r.events_morning, r.events_afternoon, r.events_evening) == (2, 1, 2, 1)
    assert r.device == "desktop"


def test_user_daily_plan_has_a_single_shuffle(spark):
    # Events and orders go through ONE aggregation: one Exchange, no join, no Expand (countDistinct).
    ev = events_df(spark, [("e1", "u1", "2026-03-01", "view", 1.0, "s1", 1, "a", 0.0)])
    od = orders_df(spark, [("o1", "u1", "2026-03-01", 5.0, 0.0, "completed")])
    plan = user_daily.user_daily(ev, od)._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange") == 1, plan
    assert "Expand" not in plan and "Join" not in plan, plan
