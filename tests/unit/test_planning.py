"""jobs/features/planning.py: which days a run builds and which raw partitions it reads (no Spark)."""

from __future__ import annotations

import pytest

from jobs.features import planning


def test_window_dates_is_inclusive_and_ordered():
    dates = planning.window_dates("2026-03-28", 3)
    assert dates == ["2026-03-26", "2026-03-27", "2026-03-28"]


def _days(first: str, last: str) -> set[str]:
    return set(planning.date_range(first, last))


def test_daily_plan_rebuilds_the_lookback_and_reads_only_what_it_needs():
    raw = _days("2026-01-01", "2026-03-10")
    daily = _days("2025-12-01", "2026-03-09")
    plan = planning.plan_daily("2026-03-10", 2, raw, daily)
    # Days [ds-2, ds] (late rows may have changed them); each day d needs raw partitions [d, d+2].
    assert plan.build_days == ["2026-03-08", "2026-03-09", "2026-03-10"]
    assert plan.read_partitions == ["2026-03-08", "2026-03-09", "2026-03-10"]  # 03-11, 03-12 do not exist
    assert plan.missing_days == []


def test_rerun_of_an_old_date_reads_no_partition_after_it():
    # Point in time: 03-06 and 03-07 exist, but what the run of 03-05 computes is as of 03-05.
    raw = _days("2026-01-01", "2026-03-10")
    plan = planning.plan_daily("2026-03-05", 2, raw, raw)
    assert plan.build_days == ["2026-03-03", "2026-03-04", "2026-03-05"]
    assert plan.read_partitions == ["2026-03-03", "2026-03-04", "2026-03-05"]
    assert planning.raw_window("2026-03-04", 2, "2026-03-05") == ["2026-03-04", "2026-03-05"]


def test_rerun_of_an_old_date_builds_days_revised_since_as_of_it_without_writing_them():
    # The stored 03-04 and 03-05 hold late rows that arrived in 03-06/03-07 ("ahead" of 03-05); 03-03 was
    # final by 03-05 and is unchanged. The as-of versions of 03-04 and 03-05 are built for the run only.
    raw = _days("2026-01-01", "2026-03-10")
    plan = planning.plan_daily("2026-03-05", 2, raw, raw, up_to_date=lambda d: True,
                               ahead=lambda d: d in {"2026-03-04", "2026-03-05"})
    assert plan.build_days == [] and plan.kept_days == ["2026-03-03"]
    assert plan.asof_days == ["2026-03-04", "2026-03-05"]
    assert plan.read_partitions == ["2026-03-04", "2026-03-05"]
    # A backfill range never writes an ahead day either.
    backfill = planning.plan_daily("2026-03-05", 2, raw, raw, rebuild_from="2026-03-01",
                                   ahead=lambda d: d == "2026-03-05")
    assert backfill.build_days == sorted(_days("2026-03-01", "2026-03-04"))
    assert backfill.asof_days == ["2026-03-05"]


def test_fresh_warehouse_plans_every_missing_day_of_the_window_in_one_job():
    raw = _days("2026-02-01", "2026-03-10")  # 38 days of raw data, no user_daily yet
    plan = planning.plan_daily("2026-03-10", 2, raw, set())
    assert plan.build_days == sorted(raw)
    assert len(plan.missing_days) == 35 and plan.missing_days[-1] == "2026-03-07"


def test_backfill_plan_covers_the_whole_range():
    raw = _days("2026-01-01", "2026-03-10")
    plan = planning.plan_daily("2026-03-10", 2, raw, raw, rebuild_from="2026-02-01")
    assert plan.build_days == sorted(_days("2026-02-01", "2026-03-10"))
    assert plan.read_partitions == plan.build_days


def test_lookback_days_whose_inputs_did_not_change_are_kept_and_their_partitions_not_read():
    raw = _days("2026-01-01", "2026-03-10")
    daily = _days("2025-12-01", "2026-03-09")
    # 03-08 is up to date (no late rows for it in 03-10); 03-09 got late rows in 03-10.
    plan = planning.plan_daily("2026-03-10", 2, raw, daily, up_to_date=lambda d: d == "2026-03-08")
    assert plan.build_days == ["2026-03-09", "2026-03-10"]
    assert plan.kept_days == ["2026-03-08"]
    assert plan.read_partitions == ["2026-03-09", "2026-03-10"]  # 03-09 needs [03-09, 03-11]; 03-10 itself


def test_ds_itself_a_missing_lookback_day_and_a_backfill_are_rebuilt_even_when_up_to_date():
    raw = _days("2026-01-01", "2026-03-10")
    always = lambda d: True  # noqa: E731
    plan = planning.plan_daily("2026-03-10", 2, raw, raw - {"2026-03-09"}, up_to_date=always)
    assert plan.build_days == ["2026-03-09", "2026-03-10"] and plan.kept_days == ["2026-03-08"]
    backfill = planning.plan_daily("2026-03-10", 2, raw, raw, rebuild_from="2026-03-01", up_to_date=always)
    assert backfill.build_days == sorted(_days("2026-03-01", "2026-03-10")) and backfill.kept_days == []


E, O = "raw.events", "raw.orders"


@pytest.mark.parametrize("recorded, current, late_rows_in, unchanged", [
    # Built from 03-08 and 03-09; 03-10 arrived since without rows of the day: nothing to do.
    ({(E, "03-08"): "a", (E, "03-09"): "b"}, {(E, "03-08"): "a", (E, "03-09"): "b", (E, "03-10"): "c"},
     set(), True),
    # ... with late rows of the day in 03-10: rebuild.
    ({(E, "03-08"): "a", (E, "03-09"): "b"}, {(E, "03-08"): "a", (E, "03-09"): "b", (E, "03-10"): "c"},
     {(E, "03-10")}, False),
    # A late order counts as much as a late event.
    ({(E, "03-08"): "a", (O, "03-08"): "x"}, {(E, "03-08"): "a", (O, "03-08"): "x", (O, "03-09"): "y"},
     {(O, "03-09")}, False),
    # 03-09 was written again since (other files): its rows may differ, whatever they hold now.
    ({(E, "03-08"): "a", (E, "03-09"): "b"}, {(E, "03-08"): "a", (E, "03-09"): "B"}, set(), False),
    # 03-09 is gone: its rows must leave the day.
    ({(E, "03-08"): "a", (E, "03-09"): "b"}, {(E, "03-08"): "a"}, set(), False),
    # No record (built before records existed, other parameters, or never): rebuild.
    (None, {(E, "03-08"): "a"}, set(), False),
])
def test_inputs_unchanged(recorded, current, late_rows_in, unchanged):
    assert planning.inputs_unchanged(recorded, current, lambda key: key in late_rows_in) is unchanged


def test_a_normal_day_keeps_each_lookback_day_whose_inputs_did_not_change():
    # ds itself is new (no user_daily yet): both lookback days may be kept.
    raw = _days("2026-01-01", "2026-03-10")
    plan = planning.plan_daily("2026-03-10", 2, raw, _days("2025-12-01", "2026-03-09"), up_to_date=lambda d: True)
    assert plan.build_days == ["2026-03-10"] and plan.kept_days == ["2026-03-08", "2026-03-09"]
