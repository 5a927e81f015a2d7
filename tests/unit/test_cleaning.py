"""jobs/features/cleaning.py on tiny hand-made DataFrames: one negative test per rule, expected counts in
comments."""

from __future__ import annotations

import datetime as dt

import pytest

from core import tables, warehouse
from jobs.features import cleaning
from jobs.features.cleaning import CleaningParams

UTC = dt.timezone.utc
DAY = "2026-03-10"  # the raw partition of most rows below
L = 2  # late-data lookback used by these tests
NO_PARAMS = CleaningParams("2026-03-01", caps={}, medians={})


def ts(day: str, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


def event(eid="e1", uid="u1", when=None, etype="view", price=10.0, qty=1, dwell=5.0, device="mobile",
          category="shoes", ds=DAY):
    when = ts(DAY) if when is None else when
    return (eid, uid, when, etype, "p1", category, price, qty, "s1", dwell, device, ds)


def events_df(spark, rows):
    return spark.createDataFrame(rows, tables.table("raw.events").spark_ddl())


def order(oid="o1", uid="u1", when=None, amount=10.0, items=1, discount=0.0, status="completed", ds=DAY):
    return (oid, uid, ts(DAY) if when is None else when, amount, items, discount, status, ds)


def orders_df(spark, rows):
    return spark.createDataFrame(rows, tables.table("raw.orders").spark_ddl())


def counts(cleaned: cleaning.Cleaned) -> dict[tuple[str, str], int]:
    """(step, column or reason) -> rows, for the raw partition DAY."""
    out = {}
    for r in cleaned.counts.where(f"ds = '{DAY}'").collect():
        out[(r.step, r.detail if r.step == "quarantine" else r.column_name)] = r.rows
    return out


def reasons(cleaned: cleaning.Cleaned) -> dict[str, str]:
    """row_key -> reason of the quarantined rows."""
    return {r.row_key: r.reason for r in cleaned.quarantine.collect()}


@pytest.mark.spark
def test_rows_without_user_or_timestamp_are_dropped_not_quarantined(spark):
    df = events_df(spark, [
        event("e1"),
        event("e2", uid=None),  # no user -> dropped
        event("e3", uid=None, etype="bogus"),  # dropped first: a row is counted by one step only
        ("e4", "u1", None, "view", "p1", "a", 1.0, 1, "s1", 1.0, "mobile", DAY),  # no timestamp -> dropped
    ])
    out = cleaning.clean(df, "raw.events", NO_PARAMS, L)
    assert [r.event_id for r in out.rows.collect()] == ["e1"]
    c = counts(out)
    assert (c[("input", "*")], c[("drop_missing", "user_id")], c[("drop_missing", "event_ts")]) == (4, 2, 1)
    assert out.quarantine.count() == 0 and c[("output", "*")] == 1


@pytest.mark.spark
def test_events_are_deduplicated_by_id_and_exact_rows_without_id(spark):
    df = events_df(spark, [
        event("e1"), event("e1"),  # same event_id -> one kept (1 duplicate)
        event(None, dwell=7.0), event(None, dwell=7.0),  # no id, identical -> one kept (1 duplicate)
        event(None, dwell=8.0),  # no id but a different row -> kept
        event("e9", ds="2026-03-11", when=ts(DAY, 23)),  # arrives late in the next partition...
        event("e9", ds=DAY, when=ts(DAY, 23)),  # ...and was also sent on time: one kept overall
    ])
    out = cleaning.clean(df, "raw.events", NO_PARAMS, L)
    assert out.rows.count() == 4  # e1, two id-less rows, e9
    assert sorted(r.event_id or "-" for r in out.rows.collect()) == ["-", "-", "e1", "e9"]


@pytest.mark.spark
def test_each_quarantine_rule_with_its_reason_code(spark):
    df = events_df(spark, [
        event("ok"),
        event("type", etype="teleport"),  # unknown_event_type
        event("null_type", etype=None),  # unknown_event_type too
        event("neg_price", price=-0.01),  # negative_price
        event("zero_price", price=0.0),  # price 0 (searches) is fine -> kept
        event("qty", qty=0),  # non_positive_quantity
        event("dwell", dwell=-1.0),  # negative_dwell
        event("future", when=ts("2026-03-11", 0, 0)),  # true day after the partition day
        event("late2", when=ts("2026-03-08", 1)),  # 2 days late: within the lookback -> kept
        event("late3", when=ts("2026-03-07", 23, 59)),  # 3 days late -> late_beyond_lookback
        event("both", etype="teleport", price=-5.0),  # several rules: the first declared one wins
    ])
    out = cleaning.clean(df, "raw.events", NO_PARAMS, L)
    assert reasons(out) == {
        "type": "unknown_event_type", "null_type": "unknown_event_type", "neg_price": "negative_price",
        "qty": "non_positive_quantity", "dwell": "negative_dwell", "future": "future_timestamp",
        "late3": "late_beyond_lookback", "both": "unknown_event_type",
    }
    assert sorted(r.event_id for r in out.rows.collect()) == ["late2", "ok", "zero_price"]
    c = counts(out)
    assert c[("quarantine", "unknown_event_type")] == 3 and c[("quarantine", "late_beyond_lookback")] == 1
    assert c[("output", "*")] == 3 and c[("deduplicate", "event_id")] == 0
    # The quarantined row is kept whole, as JSON, in the partition it arrived in.
    row = out.quarantine.where("row_key = 'neg_price'").first()
    assert row.ds == DAY and row.table_name == "raw.events" and '"price":-0.01' in row.row_json


@pytest.mark.spark
def test_late_rows_get_their_true_utc_day_and_keep_the_partition_they_arrived_in(spark):
    df = events_df(spark, [
        event("a", when=ts(DAY, 23, 59)),  # 23:59 UTC stays on its UTC day
        event("b", when=ts("2026-03-09", 0, 1), ds=DAY),  # arrived a day late: counted on 03-09
    ])
    rows = {r.event_id: r for r in cleaning.clean(df, "raw.events", NO_PARAMS, L).rows.collect()}
    assert (rows["a"].ds, rows["a"].raw_ds) == (DAY, DAY)
    assert (rows["b"].ds, rows["b"].raw_ds) == ("2026-03-09", DAY)


@pytest.mark.spark
def test_categoricals_become_unknown_and_stored_caps_winsorise(spark):
    caps = {("raw.events", "price"): 100.0, ("raw.events", "quantity"): 3.0,
            ("raw.events", "dwell_seconds"): 60.0}
    params = CleaningParams("2026-03-01", caps=caps, medians={})
    df = events_df(spark, [
        event("e1", price=99.0, qty=3, dwell=60.0),  # at the caps: unchanged
        event("e2", price=5000.0, qty=40, dwell=9000.0, device=None, category=None),  # capped, unknowns
    ])
    out = cleaning.clean(df, "raw.events", params, L)
    rows = {r.event_id: r for r in out.rows.collect()}
    assert (rows["e1"].price, rows["e1"].quantity, rows["e1"].dwell_seconds) == (99.0, 3, 60.0)
    assert (rows["e2"].price, rows["e2"].quantity, rows["e2"].dwell_seconds) == (100.0, 3, 60.0)
    assert (rows["e2"].device, rows["e2"].category) == (tables.UNKNOWN, tables.UNKNOWN)
    c = counts(out)
    assert c[("winsorise", "price")] == c[("winsorise", "quantity")] == c[("winsorise", "dwell_seconds")] == 1
    assert c[("impute_unknown", "device")] == c[("impute_unknown", "category")] == 1


@pytest.mark.spark
def test_winsorising_keeps_missing_values_missing(spark):
    # A search has no price or quantity: it must not become an event at the cap (least() skips nulls).
    params = CleaningParams("2026-03-01", caps={("raw.events", "price"): 100.0, ("raw.events", "quantity"): 3.0,
                                                ("raw.events", "dwell_seconds"): 60.0}, medians={})
    df = events_df(spark, [event("e1", etype="search", price=None, qty=None, dwell=None)])
    out = cleaning.clean(df, "raw.events", params, L)
    row = out.rows.first()
    assert (row.price, row.quantity, row.dwell_seconds) == (None, None, None)
    c = counts(out)
    assert c[("winsorise", "price")] == c[("winsorise", "quantity")] == c[("winsorise", "dwell_seconds")] == 0


@pytest.mark.spark
def test_orders_rules(spark):
    df = orders_df(spark, [
        order("o1"), order("o1"),  # duplicate order_id -> 1 kept
        order(None),  # no order_id -> dropped
        order("o2", uid=None),  # no user -> dropped
        order("o3", amount=-1.0),  # negative_amount
        order("o4", discount=-2.0),  # negative_amount (discount)
        order("o5", status="lost"),  # unknown_status
        order("o6", items=0),  # non_positive_item_count
        order("o7", when=ts("2026-03-11")),  # future_timestamp
    ])
    out = cleaning.clean(df, "raw.orders", NO_PARAMS, L)
    assert [r.order_id for r in out.rows.collect()] == ["o1"]
    assert reasons(out) == {"o3": "negative_amount", "o4": "negative_amount", "o5": "unknown_status",
                            "o6": "non_positive_item_count", "o7": "future_timestamp"}
    c = counts(out)
    # 9 in - 2 dropped - 5 quarantined - 1 duplicate = 1 out
    assert (c[("input", "*")], c[("drop_missing", "order_id")], c[("drop_missing", "user_id")]) == (9, 1, 1)
    assert (c[("deduplicate", "order_id")], c[("output", "*")]) == (1, 1)


def _users(spark, rows):
    data = [(uid, ts("2025-01-01"), by, g, None, "1", ds) for uid, by, g, ds in rows]
    return spark.createDataFrame(data, tables.table("raw.users").spark_ddl())


@pytest.mark.spark
def test_users_median_is_the_stored_one_not_recomputed(spark):
    users = _users(spark, [("u1", 2000, "f", DAY), ("u2", 2002, "m", DAY), ("u3", None, None, DAY),
                           ("u1", 2000, "f", "2026-03-11")])  # the next snapshot: u1 again, not a duplicate
    stored = CleaningParams("2026-01-01", caps={}, medians={("raw.users", "birth_year"): 1980.0})
    out = cleaning.clean(users, "raw.users", stored, L)
    rows = {(r.user_id, r.ds): r for r in out.rows.collect()}
    assert len(rows) == 4
    # The data's own median would be 2000; the stored median of the training window (1980) is used.
    assert rows[("u3", DAY)].birth_year == 1980
    assert (rows[("u3", DAY)].gender, rows[("u3", DAY)].occupation) == (tables.UNKNOWN, tables.UNKNOWN)
    c = counts(out)
    assert c[("impute_median", "birth_year")] == 1 and c[("impute_unknown", "occupation")] == 3


@pytest.mark.spark
def test_fit_params_ignores_quarantined_rows_and_fits_medians(spark):
    # 1000 prices 1..1000 plus one absurd negative: the negative one is quarantined before fitting.
    rows = [event(f"e{i}", price=float(i)) for i in range(1, 1001)] + [event("bad", price=-1e9)]
    users = _users(spark, [("u1", 1970, "f", DAY), ("u2", 1980, "f", DAY), ("u3", 1990, "f", DAY),
                           ("u4", None, "f", DAY)])
    fitted = cleaning.fit_params({"raw.events": events_df(spark, rows), "raw.users": users}, L, DAY)
    by = {(r["table_name"], r["column_name"]): r for r in fitted}
    # 99.9% quantile of 1..1000 is 999 (percentile_approx returns an observed value).
    price = by[("raw.events", "price")]
    assert (price["value"], price["fitted_rows"]) == (999.0, 1000)
    assert by[("raw.users", "birth_year")]["value"] == 1980.0  # median of 1970, 1980, 1990 (null ignored)
    params = CleaningParams.from_rows(DAY, fitted)
    assert params.caps[("raw.events", "price")] == 999.0


@pytest.mark.spark
def test_cleaned_frames_conform_to_the_quality_tables(spark):
    out = cleaning.clean(events_df(spark, [event("e1"), event("x", price=-1.0)]), "raw.events", NO_PARAMS, L)
    assert warehouse.conform(out.quarantine, "quality.quarantine").count() == 1
    assert warehouse.conform(out.counts, "quality.cleaning_log").count() > 5
