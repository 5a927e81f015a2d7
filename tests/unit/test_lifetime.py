"""Lifetime state merge (jobs/features/lifetime.py) on tiny hand-made user_daily rows."""

from __future__ import annotations

import pytest

from core import tables, warehouse
from jobs.features.lifetime import lifetime_states

pytestmark = pytest.mark.spark


def _daily(spark, rows):
    """rows: (user_id, ds, purchases, orders, revenue)."""
    # Only the user_daily columns the lifetime state reads (the real table has many more).
    data = [(uid, purchases, orders, revenue, d) for uid, d, purchases, orders, revenue in rows]
    ddl = tables.table("features.user_daily").spark_ddl(only=["user_id", "purchases", "orders", "revenue"])
    return spark.createDataFrame(data, ddl + ", ds STRING")


DAILY = [
    ("u1", "2026-03-01", 0, 0, 0.0),
    ("u1", "2026-03-03", 1, 1, 19.99),
    ("u1", "2026-03-05", 2, 2, 0.1),
    ("u2", "2026-03-04", 0, 0, 0.0),
    ("u2", "2026-03-07", 0, 1, 0.2),  # after the last date below: ignored (point in time)
]


def _rows(df):
    return {(r.user_id, r.ds): r for r in warehouse.conform(df, "features.user_lifetime").collect()}


def test_states_per_date_from_scratch(spark):
    rows = _rows(lifetime_states(None, _daily(spark, DAILY), ["2026-03-04", "2026-03-05"]))
    u1 = rows[("u1", "2026-03-04")]
    # As of 03-04: u1 seen 03-01 and 03-03, bought on 03-03: 1 order of 19.99, 2 active days.
    assert (u1.first_seen_ds, u1.last_seen_ds, u1.first_purchase_ds, u1.last_purchase_ds) == (
        "2026-03-01", "2026-03-03", "2026-03-03", "2026-03-03")
    assert (u1.lifetime_orders, u1.lifetime_revenue, u1.lifetime_active_days) == (1, 19.99, 2)
    u1 = rows[("u1", "2026-03-05")]
    # + 03-05: 3 orders, 19.99 + 0.1 = 20.09 exactly (summed in cents), 3 active days.
    assert (u1.last_seen_ds, u1.last_purchase_ds, u1.lifetime_orders, u1.lifetime_revenue) == (
        "2026-03-05", "2026-03-05", 3, 20.09)
    u2 = rows[("u2", "2026-03-05")]
    assert (u2.first_seen_ds, u2.first_purchase_ds, u2.lifetime_orders, u2.lifetime_active_days) == (
        "2026-03-04", None, 0, 1)
    assert ("u2", "2026-03-03") not in rows and len(rows) == 4  # u2 unknown before its first day


def test_incremental_update_equals_scratch(spark):
    daily = _daily(spark, DAILY)
    # Day by day: state(03-01), then each next day merges the previous state with one day of rows.
    state = lifetime_states(None, daily.where("ds <= '2026-03-01'"), ["2026-03-01"])
    for day in ("2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06", "2026-03-07"):
        state = lifetime_states(state, daily.where(f"ds = '{day}'"), [day]).localCheckpoint()
    scratch = lifetime_states(None, daily, ["2026-03-07"])
    assert _rows(state) == _rows(scratch)  # identical, revenue included (0.2 + 0.1 + 19.99)
    assert _rows(scratch)[("u2", "2026-03-07")].lifetime_revenue == 0.2


def test_previous_state_without_new_rows_is_carried_forward(spark):
    before = lifetime_states(None, _daily(spark, DAILY[:1]), ["2026-03-01"])
    later = _rows(lifetime_states(before, _daily(spark, []), ["2026-03-09"]))
    # u1 did nothing since 03-01: still there as of 03-09, unchanged.
    assert later[("u1", "2026-03-09")].last_seen_ds == "2026-03-01"
    assert later[("u1", "2026-03-09")].lifetime_active_days == 1
