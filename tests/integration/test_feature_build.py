"""The feature runner on a tiny generated warehouse (dirt, late events): lifetime state, late data, point in
time, partition pruning, quality tables."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from core import settings, tables, warehouse
from jobs.dates import shift
from jobs.features import cleaning, cleaning_params, planning, runner, user_daily, window_state
from jobs.features.calendar import holiday_dates
from jobs.features.lifetime import lifetime_states
from jobs.features.user_features import user_features
from synthetic import generator as synthetic

pytestmark = [pytest.mark.integration, pytest.mark.spark]

END = "2026-03-14"
FIRST_RUN = "2026-03-12"  # fresh warehouse: lifetime from scratch, then 03-13 and 03-14 incrementally
L = 2


@pytest.fixture(scope="module")
def seeded_warehouse(tmp_path_factory, spark):
    home = tmp_path_factory.mktemp("feature_build")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        mp.setenv("SEGMENTS_LATE_DATA_DAYS", str(L))
        mp.delenv("SEGMENTS_WAREHOUSE", raising=False)
        synthetic.generate(users=120, days=14, end_date=END, seed=3, progress=False)
        # Only the days up to each run exist when it runs: the later ones "arrive" afterwards.
        raw_root = {n: warehouse.table_path(n) for n in ("raw.events", "raw.orders", "raw.users")}
        stash = home / "not_arrived_yet"
        later = ["2026-03-13", "2026-03-14"]
        for name, root in raw_root.items():
            for d in later:
                shutil.move(f"{root}/ds={d}", stash / name / f"ds={d}")
        summaries = [runner.build_features(spark, FIRST_RUN)]
        for d in later:
            for name, root in raw_root.items():
                shutil.move(stash / name / f"ds={d}", f"{root}/ds={d}")
            summaries.append(runner.build_features(spark, d))
        yield {"home": home, "summaries": summaries}


def _lifetime(spark, ds):
    df = warehouse.read_spark(spark, "features.user_lifetime", ds=ds)
    return {r.user_id: r.asDict() for r in df.collect()}


def _true_days(raw_ds: str) -> set[str]:
    """The UTC days of the events and orders that arrived in a raw partition (pandas, not the runner)."""
    stamps = [warehouse.read_pandas(name, raw_ds)[column] for name, column in
              (("raw.events", "event_ts"), ("raw.orders", "order_ts"))]
    return set(pd.concat(stamps).dropna().dt.tz_convert("UTC").dt.strftime("%Y-%m-%d"))


def test_runs_fill_the_window_then_update_incrementally(seeded_warehouse):
    first, second, third = seeded_warehouse["summaries"]
    assert first.missing_dates_filled and first.lifetime_base is None  # fresh: all days, from scratch
    assert not second.missing_dates_filled
    # Each later run rebuilds its ds and the lookback days that got late rows in the partition that arrived
    # with it; the generator's late rows are a day late (or beyond the lookback), so ds-2 is kept.
    for run in (second, third):
        late = {d for d in planning.window_dates(run.ds, L + 1)[:-1] if d in _true_days(run.ds)}
        assert late == {shift(run.ds, -1)}  # the generated data, as this test needs it
        assert run.daily_dates_built == sorted(late | {run.ds})
        assert run.daily_dates_kept == [shift(run.ds, -2)]
    assert (second.lifetime_base, third.lifetime_base) == ("2026-03-10", "2026-03-11")
    assert first.params_fit_ds == second.params_fit_ds == FIRST_RUN  # stored params reused, not refitted


def test_lifetime_day_by_day_equals_rebuild_from_scratch(seeded_warehouse, spark):
    daily = warehouse.read_spark(spark, "features.user_daily", until="2026-03-15")
    scratch = lifetime_states(None, daily, [END])
    scratch_rows = {r.user_id: r.asDict()
                    for r in warehouse.conform(scratch, "features.user_lifetime").collect()}
    incremental = _lifetime(spark, END)
    assert len(incremental) > 50
    assert incremental == scratch_rows  # bit-identical, revenue included


def test_window_state_day_by_day_equals_rebuild_from_scratch(seeded_warehouse, spark):
    first, second, third = seeded_warehouse["summaries"]
    assert first.window_base is None
    assert (second.window_base, third.window_base) == ("2026-03-10", "2026-03-11")
    country = settings.load().holiday_country
    daily = warehouse.read_spark(spark, "features.user_daily", until="2026-03-15")
    start = planning.window_dates(END)[0]
    scratch = window_state.window_states(daily, [END], holiday_dates(country, start, END))
    names = (window_state.USERS_TABLE, window_state.CATEGORIES_TABLE)
    stored = [warehouse.read_spark(spark, name, ds=END) for name in names]
    for name, built, updated in zip(names, scratch, stored):
        if name == window_state.USERS_TABLE:
            built = built.withColumn("holiday_country", F.lit(country))
        rows = [sorted(tuple(r) for r in warehouse.conform(df, name).collect()) for df in (built, updated)]
        assert len(rows[0]) > 50 and rows[0] == rows[1]  # bit-identical, money included
    # ...so the features of the runner (state read back) equal those built from the whole window.
    users = cleaning.clean(warehouse.read_spark(spark, "raw.users", ds=END), "raw.users",
                           cleaning_params.load_params(spark, END, L), L).rows.drop(cleaning.RAW_DS)
    lifetime = warehouse.read_spark(spark, "features.user_lifetime", ds=END)
    from_scratch = user_features(daily, users, lifetime, END, holiday_country=country)
    expected = warehouse.conform(from_scratch, "features.user_features").drop("ds").toPandas()
    written = warehouse.read_pandas("features.user_features", END)
    pd.testing.assert_frame_equal(expected.sort_values("user_id").reset_index(drop=True),
                                  written.sort_values("user_id").reset_index(drop=True))


def test_late_events_are_counted_on_their_true_day(seeded_warehouse, spark):
    # Views of 03-12 from every partition they arrived in within the lookback (03-12 .. 03-14), cleaned
    # the same way in pandas: known user, known type, non-negative price, one row per event_id.
    frames = [warehouse.read_pandas("raw.events", d, tables.table("raw.events").all_columns())
              for d in ("2026-03-12", "2026-03-13", "2026-03-14")]
    ev = pd.concat(frames)
    ev = ev[ev["user_id"].notna() & ev["event_type"].isin(tables.EVENT_TYPES) & (ev["price"] >= 0)]
    ev = ev.drop_duplicates("event_id")
    true_day = ev["event_ts"].dt.strftime("%Y-%m-%d")
    on_day = ev[true_day == "2026-03-12"]
    assert (on_day["ds"] != "2026-03-12").sum() > 0  # some arrived late
    built = warehouse.read_pandas("features.user_daily", "2026-03-12")
    assert built["views"].sum() == (on_day["event_type"] == "view").sum()


def test_quality_tables_count_the_dirt(seeded_warehouse):
    columns = tables.table("quality.cleaning_log").all_columns()
    log = pd.concat([warehouse.read_pandas("quality.cleaning_log", d, columns)
                     for d in ("2026-03-12", "2026-03-13", "2026-03-14")])
    events = log[log["table_name"] == "raw.events"]
    steps = events.groupby("step")["rows"].sum()
    assert steps["drop_missing"] > 0 and steps["deduplicate"] > 0 and steps["winsorise"] > 0
    # Every input row is accounted for: in = dropped + quarantined + duplicates + out.
    for _, part in events.groupby("ds"):
        s = part.groupby("step")["rows"].sum()
        assert s["input"] == s["drop_missing"] + s.get("quarantine", 0) + s["deduplicate"] + s["output"]
    quarantine = pd.concat([warehouse.read_pandas("quality.quarantine", d)
                            for d in warehouse.partitions("quality.quarantine")])
    assert {"unknown_event_type", "negative_price"} <= set(quarantine["reason"])


def test_daily_run_reads_only_the_partitions_it_needs(seeded_warehouse, spark):
    raw = set(warehouse.partitions("raw.events"))
    plan = planning.plan_daily("2026-03-10", L, raw, set(warehouse.partitions("features.user_daily")))
    # A rerun of 03-10 rebuilds true days 03-08..03-10 from partitions 03-08..03-10: 03-11 and 03-12 exist,
    # but what it computes is as of 03-10 (point in time).
    assert plan.read_partitions == ["2026-03-08", "2026-03-09", "2026-03-10"]
    params = cleaning_params.load_params(spark, "2026-03-10", L)
    cleaned = user_daily.clean_inputs(spark, plan, params, L)
    df = user_daily.daily_frame({name: cleaned[name].rows for name in planning.DAILY_INPUTS}, plan)
    physical = df._jdf.queryExecution().executedPlan().toString()
    scans = [line for line in physical.splitlines() if "FileScan parquet" in line]
    assert len(scans) >= 2  # raw.events and raw.orders
    for scan in scans:
        listed = re.search(r"PartitionFilters: \[(.*?)\]", scan)
        assert listed, scan
        assert sorted(set(re.findall(r"\d{4}-\d{2}-\d{2}", listed.group(1)))) == plan.read_partitions, scan


def test_a_rerun_with_no_new_raw_partition_rebuilds_only_ds(seeded_warehouse, spark):
    kept = ["2026-03-12", "2026-03-13"]
    before = {d: warehouse.partition_fingerprint("features.user_daily", d) for d in kept}
    def features():
        written = warehouse.read_pandas("features.user_features", END)
        return written.sort_values("user_id").reset_index(drop=True)

    expected = features()
    summary = runner.build_features(spark, END)
    assert (summary.daily_dates_built, summary.daily_dates_kept) == ([END], kept)
    assert {d: warehouse.partition_fingerprint("features.user_daily", d) for d in kept} == before  # untouched
    pd.testing.assert_frame_equal(expected, features())


def test_point_in_time_events_after_ds_do_not_change_features(seeded_warehouse, spark):
    ds = END
    def features():
        return warehouse.read_pandas("features.user_features", ds).sort_values("user_id").reset_index(drop=True)

    before_features = features()
    before_lifetime = _lifetime(spark, ds)
    # Append events dated after ds: a new partition of the next day, and a row stamped tomorrow in ds itself.
    events = warehouse.read_arrow("raw.events", ds)
    tomorrow = dt.datetime.fromisoformat(ds).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1, hours=10)
    future = events.slice(0, 50).set_column(
        events.schema.get_field_index("event_ts"), "event_ts",
        pa.array([tomorrow] * 50, pa.timestamp("us", tz="UTC")))
    future = future.set_column(0, "event_id", pa.array([f"future{i}" for i in range(50)]))
    warehouse.write_arrow("raw.events", future, "2026-03-15")
    warehouse.write_arrow("raw.orders", warehouse.read_arrow("raw.orders", ds).slice(0, 0), "2026-03-15")
    warehouse.write_arrow("raw.events", pa.concat_tables([events, future.slice(0, 1)]), ds)

    summary = runner.build_features(spark, ds)
    # ds's raw partition was written again: 03-13, built from it, is rebuilt whatever it holds now; 03-12
    # was built before that partition arrived, and it holds no rows of 03-12.
    assert (summary.daily_dates_built, summary.daily_dates_kept) == (["2026-03-13", ds], ["2026-03-12"])
    pd.testing.assert_frame_equal(before_features, features())
    assert _lifetime(spark, ds) == before_lifetime
    reasons = warehouse.read_pandas("quality.quarantine", ds)
    assert "future0" in set(reasons.loc[reasons["reason"] == "future_timestamp", "row_key"])
    assert summary.active_users == len(before_features)


def _write_raw(events_by_day: dict[str, str | None]) -> None:
    """One user; on each day one event of the given type at noon UTC (None: no event that day)."""
    for d, etype in events_by_day.items():
        when = dt.datetime.fromisoformat(d).replace(hour=12, tzinfo=dt.timezone.utc)
        events = [] if etype is None else [
            {"event_id": f"e-{d}", "user_id": "u1", "event_ts": when, "event_type": etype, "product_id": "p1",
             "category": "shoes", "price": 1.0, "quantity": 1, "session_id": "s1", "dwell_seconds": 5.0,
             "device": "mobile"}]
        user = {"user_id": "u1", "signup_ts": when, "birth_year": 1990, "gender": "f", "occupation": "x",
                "city_tier": "1"}
        for name, rows in (("raw.events", events), ("raw.orders", []), ("raw.users", [user])):
            schema = tables.table(name).arrow_schema()
            warehouse.write_arrow(name, pa.Table.from_pylist(rows, schema=schema), d)


def test_rebuilt_day_without_rows_loses_its_old_user_daily_partition(platform_home, spark):
    # Two days with one view each; then day 2's only event turns out impossible (unknown type) and the
    # rebuild must remove day 2's user_daily rows instead of leaving the old ones in place.
    days = ["2026-03-01", "2026-03-02"]
    params = cleaning.CleaningParams("2026-03-01", caps={}, medians={})
    plan = planning.plan_daily(days[1], L, set(days), set(), rebuild_from=days[0])
    _write_raw({days[0]: "view", days[1]: "view"})
    user_daily.build_user_daily(spark, plan, params, L)
    assert warehouse.partitions("features.user_daily") == days

    _write_raw({days[0]: "view", days[1]: "teleport"})
    assert user_daily.build_user_daily(spark, plan, params, L) == 1  # the day-2 event is quarantined
    assert warehouse.partitions("features.user_daily") == days[:1]
    log = warehouse.read_pandas("quality.cleaning_log", days[1])
    steps = log[log["table_name"] == "raw.events"].groupby("step")["rows"].sum()  # one row per reason
    assert (steps["input"], steps["quarantine"], steps["output"]) == (1, 1, 0)


def test_rerun_that_leaves_ds_without_rows_removes_its_old_partitions(platform_home, spark):
    # The only event of the window (day 2) is a view, then turns out impossible (unknown type): on the rerun
    # u1 has no activity in the 90 days, so ds has no user_daily, lifetime, window or feature row, and every
    # partition of ds written by the first run must go rather than keep u1's stale rows.
    ds = "2026-03-02"
    written = ["features.user_daily", "features.user_lifetime", window_state.USERS_TABLE,
               window_state.CATEGORIES_TABLE, "features.user_features"]
    _write_raw({"2026-03-01": None, ds: "view"})
    assert runner.build_features(spark, ds).active_users == 1
    assert [name for name in written if ds not in warehouse.partitions(name)] == []

    _write_raw({"2026-03-01": None, ds: "teleport"})
    summary = runner.build_features(spark, ds)
    assert (summary.quarantined, summary.active_users) == (1, 0)
    assert [name for name in written if ds in warehouse.partitions(name)] == []
