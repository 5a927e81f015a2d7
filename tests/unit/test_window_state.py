"""Rolling 90-day window state (jobs/features/window_state.py) on tiny hand-made user_daily rows."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from core import warehouse
from jobs.features.window_state import CATEGORIES_TABLE, USERS_TABLE, window_states
from tests.unit.builders import DS, daily_df

pytestmark = pytest.mark.spark


def _day(offset: int, ds: str = DS) -> str:
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=offset)).isoformat()


def _rows(state):
    users, categories = state
    users = warehouse.conform(users.withColumn("holiday_country", F.lit("US")), USERS_TABLE)
    return ({(r.user_id, r.ds): r.asDict() for r in users.collect()},
            {(r.user_id, r.category, r.ds): r.asDict()
             for r in warehouse.conform(categories, CATEGORIES_TABLE).collect()})


def test_sums_latest_days_and_categories_from_scratch(spark):
    daily = daily_df(spark, [
        # u1: on ds and 89 days before (the oldest day of the window); 90 days before is outside.
        {"user_id": "u1", "ds": DS, "views": 2, "orders": 1, "revenue": 10.1, "category_events": {"a": 2}},
        {"user_id": "u1", "ds": _day(-89), "views": 3, "orders": 1, "revenue": 0.2, "dwell_seconds": 1.5,
         "category_events": {"a": 1, "b": 3}},
        {"user_id": "u1", "ds": _day(-90), "views": 100, "category_events": {"c": 100}},
        # u2: a purchase 95 days ago (outside) and a plain visit 10 days ago.
        {"user_id": "u2", "ds": _day(-95), "views": 1, "purchases": 1},
        {"user_id": "u2", "ds": _day(-10), "views": 1},
        {"user_id": "u3", "ds": _day(1), "views": 7},  # after ds: not in the state of ds
    ])
    users, categories = _rows(window_states(daily, [DS], holidays=[]))
    u1 = users[("u1", DS)]
    assert (u1["active_days"], u1["views"], u1["orders"], u1["events"]) == (2, 5, 2, 5)
    assert u1["revenue"] == 10.3 and u1["dwell_seconds"] == 1.5  # exact: summed as decimals
    assert (u1["last_seen_ds"], u1["last_purchase_ds"]) == (DS, DS)
    # u2's purchase is outside the window: no latest purchase day, but the visit keeps the user.
    assert (users[("u2", DS)]["last_seen_ds"], users[("u2", DS)]["last_purchase_ds"]) == (_day(-10), None)
    assert set(users) == {("u1", DS), ("u2", DS)}
    # Categories: a 2 + 1 (last seen ds), b 3 (89 days ago); c only outside the window.
    assert categories[("u1", "a", DS)]["events"] == 3 and categories[("u1", "a", DS)]["last_seen_ds"] == DS
    b = categories[("u1", "b", DS)]
    assert (b["events"], b["last_seen_ds"]) == (3, _day(-89))
    assert ("u1", "c", DS) not in categories


def _history(spark):
    """~4 months of rows for three users, with cents that do not add up exactly in binary floating point."""
    rows = []
    for k in range(-130, 1):
        if k % 3 == 0:
            rows.append({"user_id": "regular", "ds": _day(k), "views": 1 + (-k) % 4, "orders": 1,
                         "revenue": 19.99 + 0.1 * ((-k) % 7), "discount_amount": 0.1,
                         "dwell_seconds": 0.3 * (-k),
                         "category_events": {"a": 1, "b": (-k) % 5 + 1}})
        if k % 17 == 0:
            rows.append({"user_id": "rare", "ds": _day(k), "views": 2, "purchases": 1 if k < -60 else 0,
                         "revenue": 0.2, "orders": 1 if k < -60 else 0, "category_events": {"c": 2}})
    # 'gone': active only in the first weeks, so that the window loses them during the updates.
    rows += [{"user_id": "gone", "ds": _day(k), "views": 1, "category_events": {"z": 1}}
             for k in (-110, -100)]
    return daily_df(spark, rows)


def test_updated_day_by_day_equals_rebuilt_from_scratch(spark):
    daily = _history(spark).localCheckpoint()
    holidays = [_day(-20), _day(-95)]
    # From scratch for the 3 dates up to ds-12 (in one aggregation), then one day at a time, then three
    # dates at once from a base two days back (as the daily run does with a late-data lookback of 2).
    start = [_day(-14), _day(-13), _day(-12)]
    state = tuple(s.localCheckpoint() for s in window_states(daily, start, holidays))
    base = _day(-12)
    for k in range(-11, -2):
        previous = tuple(s.where(F.col("ds") == base) for s in state)
        update = window_states(daily, [_day(k)], holidays, previous=previous, base_ds=base)
        state = tuple(s.localCheckpoint() for s in update)
        base = _day(k)
    previous = tuple(s.where(F.col("ds") == base) for s in state)
    updated = _rows(window_states(daily, [_day(-2), _day(-1), DS], holidays, previous=previous, base_ds=base))
    scratch = _rows(window_states(daily, [DS], holidays))
    users, categories = ({k: v for k, v in part.items() if k[-1] == DS} for part in updated)
    assert users == scratch[0] and categories == scratch[1]  # bit-identical, money included
    assert {u for u, _ in users} == {"regular", "rare"}  # 'gone' left the window on the way
    # The rare user's purchases were all more than 60 days ago: still inside, and the latest is kept.
    assert users[("rare", DS)]["last_purchase_ds"] == _day(-68)
    # Each multi-date answer equals its own rebuild too (the three dates of one update).
    assert {k: v for k, v in updated[0].items() if k[-1] == _day(-1)} == _rows(
        window_states(daily, [_day(-1)], holidays))[0]


def test_an_update_must_start_after_its_base(spark):
    daily = daily_df(spark, [{"user_id": "u1", "ds": DS, "views": 1}])
    state = window_states(daily, [DS], holidays=[])
    with pytest.raises(ValueError, match="must predate"):
        window_states(daily, [DS], [], previous=state, base_ds=DS)
