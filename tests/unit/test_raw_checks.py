"""jobs/raw_checks.py: the raw gate's schema check on Parquet footers, and the comparison with recent days."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import settings, tables, warehouse
from jobs import raw_checks
from jobs.raw_checks import DayStats


# --- recent days (pure) -----------------------------------------------------------------------------------
def _orders_day(rows: int = 100, users: int = 80, median: float = 40.0, completed: float = 0.95) -> DayStats:
    done = round(rows * completed)
    return DayStats(rows, users, median, {"completed": done, "cancelled": rows - done})


@pytest.fixture
def s(platform_home) -> settings.Settings:
    return settings.load()  # defaults: volume 0.5-5x, scale within 3x, mix shift 0.15, min 50 rows


def test_an_ordinary_day_passes(s):
    recent = [_orders_day(90 + 5 * i, median=38 + i) for i in range(7)]
    assert raw_checks.compare_recent("raw.orders", _orders_day(110, 85, 45.0, 0.9), recent, s) == []


def test_amounts_in_cents_fail_the_scale_check(s):
    problems = raw_checks.compare_recent("raw.orders", _orders_day(median=4000.0), [_orders_day()] * 7, s)
    assert [(p.check, p.column) for p in problems] == [("scale", "amount")]
    assert "median 4,000.00, 100x the median of the 7 previous partitions (40.00)" in problems[0].detail


def test_a_partial_day_fails_on_rows_and_users(s):
    problems = raw_checks.compare_recent("raw.orders", _orders_day(20, 18), [_orders_day()] * 7, s)
    assert [(p.check, p.column) for p in problems] == [("volume", None), ("volume", "user_id")]
    assert problems[0].detail.startswith("20 rows, 0.20x the median")


def test_a_promotion_day_of_four_times_the_volume_passes(s):
    assert raw_checks.compare_recent("raw.orders", _orders_day(400, 300), [_orders_day()] * 7, s) == []


def test_a_lost_category_fails_the_mix_check(s):
    # Views are ~65% of events; a feed that lost them is all searches and purchases.
    before = DayStats(1000, 200, 20.0, {"view": 650, "search": 250, "purchase": 100})
    today = DayStats(500, 190, 20.0, {"search": 400, "purchase": 100})
    problems = raw_checks.compare_recent("raw.events", today, [before] * 7, s)
    assert [(p.check, p.column) for p in problems] == [("mix", "event_type")]
    assert problems[0].detail.startswith("share of 'view' 0.0%, 65.0% in the 7 previous partitions")


def test_no_comparison_without_enough_history_or_with_small_days(s):
    assert raw_checks.compare_recent("raw.orders", _orders_day(median=4000.0), [_orders_day()] * 2, s) == []
    small = [_orders_day(rows=20, users=15)] * 7  # below SEGMENTS_GATE_MIN_ROWS: days this small swing by chance
    assert raw_checks.compare_recent("raw.orders", _orders_day(2, 2, 4000.0), small, s) == []


def test_thresholds_come_from_the_settings(platform_home, monkeypatch):
    monkeypatch.setenv("SEGMENTS_GATE_MAX_SCALE", "200")
    lenient = settings.load()
    assert raw_checks.compare_recent("raw.orders", _orders_day(median=4000.0), [_orders_day()] * 7, lenient) == []
    monkeypatch.setenv("SEGMENTS_GATE_VOLUME_RANGE", "2-1")
    with pytest.raises(settings.BadSetting, match="SEGMENTS_GATE_VOLUME_RANGE"):
        settings.load()


# --- schema (Parquet footers) -----------------------------------------------------------------------------
def _write(ds: str, data: pa.Table) -> Path:
    path = Path(warehouse.partition_path("raw.orders", ds))
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path / "part-0.parquet")
    return path / "part-0.parquet"


def _orders(**replace: pa.Array | None) -> pa.Table:
    """Two well-formed raw.orders rows; ``column=None`` drops a column, ``column=array`` replaces it."""
    schema = tables.table("raw.orders").arrow_schema()
    rows = [{"order_id": f"o{i}", "user_id": f"u{i}", "order_ts": None, "amount": 10.0 * i, "item_count": 1,
             "discount_amount": 0.0, "status": "completed"} for i in range(2)]
    data = pa.Table.from_pylist(rows, schema=schema)
    for column, values in replace.items():
        index = data.schema.get_field_index(column)
        data = data.remove_column(index) if values is None else data.set_column(index, column, values)
    return data


def test_a_well_formed_partition_has_no_schema_problem(platform_home):
    _write("2026-03-01", _orders())
    assert raw_checks.schema_problems("raw.orders", "2026-03-01", previous=None) == []


def test_missing_required_column_and_wrong_type_are_named(platform_home):
    _write("2026-03-01", _orders(amount=None, item_count=pa.array(["1", "2"])))
    problems = raw_checks.schema_problems("raw.orders", "2026-03-01", previous=None)
    assert [(p.column, p.detail) for p in problems] == [
        ("amount", "required column is missing"), ("item_count", "type string, declared int")]


def test_an_optional_column_is_fine_absent_unless_the_previous_day_had_it(platform_home):
    _write("2026-03-01", _orders())
    _write("2026-03-02", _orders(discount_amount=None))
    assert raw_checks.schema_problems("raw.orders", "2026-03-02", previous=None) == []  # a shop without it
    problems = raw_checks.schema_problems("raw.orders", "2026-03-02", previous="2026-03-01")
    assert [(p.column, p.detail) for p in problems] == [
        ("discount_amount", "column is missing (ds=2026-03-01 had it)")]


def test_a_truncated_file_is_named_not_read(platform_home):
    path = _write("2026-03-01", _orders())
    path.write_bytes(path.read_bytes()[:40])
    problems = raw_checks.schema_problems("raw.orders", "2026-03-01", previous=None)
    assert len(problems) == 1 and problems[0].detail.startswith("file part-0.parquet (")
    assert problems[0].detail.endswith("is not readable Parquet")


def test_widening_integer_and_timestamp_units_are_accepted():
    assert raw_checks._type_ok("long", pa.int32())
    assert raw_checks._type_ok("timestamp", pa.timestamp("ns"))
    assert not raw_checks._type_ok("int", pa.int64())  # Spark does not narrow
    assert not raw_checks._type_ok("double", pa.string())


def test_day_stats_reads_each_partition_on_its_own(platform_home):
    # Two days of orders: rows, distinct users, the median amount and the status counts of each.
    schema = tables.table("raw.orders").arrow_schema()

    def day(amounts: list[float], statuses: list[str]) -> pa.Table:
        rows = [{"order_id": f"o{i}", "user_id": f"u{i % 2}", "order_ts": None, "amount": a, "item_count": 1,
                 "discount_amount": 0.0, "status": st} for i, (a, st) in enumerate(zip(amounts, statuses))]
        return pa.Table.from_pylist(rows, schema=schema)

    warehouse.write_arrow("raw.orders", day([10.0, 20.0, 30.0], ["completed"] * 3), "2026-03-01")
    warehouse.write_arrow("raw.orders", day([1000.0], ["refunded"]), "2026-03-02")
    stats = raw_checks.day_stats("raw.orders", ["2026-03-01", "2026-03-02"])
    assert stats == {"2026-03-01": DayStats(3, 2, 20.0, {"completed": 3}),
                     "2026-03-02": DayStats(1, 1, 1000.0, {"refunded": 1})}
