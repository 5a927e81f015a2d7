"""Bad input never becomes wrong segments: each kind of broken raw partition a real feed produces stops
`segments run` at the raw gate with one `error:` line naming table, ds, check, column and counts, and the
published BI state is what it was. Real Spark, GX, DuckDB; one partition of BAD_DS altered per case."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app import cli
from core import warehouse
from jobs.bi_access import query
from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]

BAD_DS = "2026-03-30"  # the day after the published DS; never built by these tests
YEAR_US = 365 * 86_400 * 1_000_000


@pytest.fixture(scope="module")
def published(trained_platform):
    """The platform with DS published: the state every bad run must leave as it was."""
    assert cli.main(["-q", "run", "--ds", DS]) == 0
    return trained_platform


def _bi_state() -> list:
    return [query("SELECT * FROM segments.publish_log ORDER BY ds")[1],
            query("SELECT count(*), sum(segment_id), max(ds) FROM segments.user_segments")[1],
            query("SELECT ds, count(*) FROM segments.segment_profiles GROUP BY ds ORDER BY ds")[1]]


def _column(data: pa.Table, name: str, values) -> pa.Table:
    """``data`` with column ``name`` replaced (``values`` an array) or dropped (``None``)."""
    index = data.schema.get_field_index(name)
    return data.remove_column(index) if values is None else data.set_column(index, name, values)


def _shift(data: pa.Table, column: str, micros: int) -> pa.Table:
    shifted = pc.add(data.column(column).cast(pa.int64()), micros).cast(data.schema.field(column).type)
    return _column(data, column, shifted)


# kind -> (table, how the day's partition is altered, what the error line says)
Alter = Callable[[pa.Table], pa.Table]
CASES: dict[str, tuple[str, Alter, str]] = {
    # The table.
    "events_without_event_type": ("raw.events", lambda t: _column(t, "event_type", None),
                                  "schema(column=event_type): required column is missing"),
    "events_without_price": ("raw.events", lambda t: _column(t, "price", None),
                             "schema(column=price): column is missing (ds=2026-03-29 had it)"),
    "timestamps_a_year_ahead": ("raw.events", lambda t: _shift(t, "event_ts", YEAR_US),
                                "cleaning: cleaning would drop or quarantine"),
    "order_amounts_in_cents": ("raw.orders", lambda t: _column(t, "amount", pc.multiply(t.column("amount"), 100)),
                               "scale(column=amount): median"),
    "price_as_string": ("raw.events", lambda t: _column(t, "price", t.column("price").cast(pa.string())),
                        "schema(column=price): type string, declared double"),
    # Our own: what real feeds do.
    "view_events_lost": ("raw.events", lambda t: t.filter(pc.not_equal(t.column("event_type"), "view")),
                         "mix(column=event_type): share of 'view' 0.0%"),
    "partial_orders_export": ("raw.orders", lambda t: t.slice(0, t.num_rows // 10), "volume: "),
    "user_ids_as_integers": ("raw.orders", lambda t: _column(t, "user_id", pa.array(range(t.num_rows), pa.int64())),
                             "schema(column=user_id): type int64, declared string"),
    "events_three_days_late": ("raw.events", lambda t: _shift(t, "event_ts", -3 * 86_400 * 1_000_000),
                               "late_beyond_lookback"),
    "order_statuses_renamed": ("raw.orders", lambda t: _column(t, "status", pc.utf8_upper(t.column("status"))),
                               "expect_column_values_to_be_in_set(column=status)"),
    "users_snapshot_twice": ("raw.users", lambda t: pa.concat_tables([t, t]),
                             "expect_column_values_to_be_unique(column=user_id)"),
    "amounts_all_null": ("raw.orders", lambda t: _column(t, "amount", pa.nulls(t.num_rows, pa.float64())),
                         "expect_column_values_to_not_be_null(column=amount)"),
}


def _run_fails(capsys) -> str:
    capsys.readouterr()
    assert cli.main(["-q", "run", "--ds", BAD_DS]) == 3  # a gate rejected the input: not worth a retry
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    print(errors[0])  # the matrix of kinds and lines: pytest -s tests/integration/test_bad_input.py
    return errors[0]


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_partition_stops_the_run_with_one_line_and_bi_intact(published, capsys, tmp_path, kind):
    table, alter, expected = CASES[kind]
    before = _bi_state()
    partition = Path(warehouse.partition_path(table, BAD_DS))
    backup = tmp_path / "backup"
    shutil.copytree(partition, backup)
    try:
        bad = alter(pq.read_table(partition / next(p.name for p in partition.glob("*.parquet"))))
        shutil.rmtree(partition)
        partition.mkdir()
        pq.write_table(bad, partition / "part-00000.parquet")
        line = _run_fails(capsys)
        assert line.startswith(f"error: {table} ds={BAD_DS}: "), line
        assert expected in line, line
    finally:
        shutil.rmtree(partition, ignore_errors=True)
        shutil.copytree(backup, partition)
    assert BAD_DS not in warehouse.partitions("features.user_features")  # nothing downstream was written
    assert _bi_state() == before


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]  # no footer any more


def _zero_pages(data: bytes) -> bytes:
    return data[:200] + bytes(len(data) // 2 - 200) + data[len(data) // 2:]  # the footer reads, pages do not


@pytest.mark.parametrize("damage", [_truncate, _zero_pages], ids=["truncated", "corrupt_pages"])
def test_an_unreadable_parquet_file_is_named(published, capsys, tmp_path, damage):
    partition = Path(warehouse.partition_path("raw.events", BAD_DS))
    backup = tmp_path / "backup"
    shutil.copytree(partition, backup)
    before = _bi_state()
    try:
        data = next(partition.glob("*.parquet"))
        data.write_bytes(damage(data.read_bytes()))
        line = _run_fails(capsys)
        assert f"raw.events ds={BAD_DS}: 1 of 1 checks failed: schema: file {data.name} (" in line
        assert line.endswith("is not readable Parquet"), line
    finally:
        shutil.rmtree(partition)
        shutil.copytree(backup, partition)
    assert _bi_state() == before


def test_missing_and_empty_partitions_stop_the_run_with_different_lines(published, capsys):
    from core import tables

    before = _bi_state()
    capsys.readouterr()
    assert cli.main(["-q", "run", "--ds", "2026-04-02"]) == 3
    assert "error: raw.events ds=2026-04-02: no partition: the data has not arrived" in capsys.readouterr().err
    # A day the shop was closed: ingest writes an empty partition, which is there but holds nothing.
    warehouse.write_arrow("raw.events", tables.table("raw.events").arrow_schema().empty_table(), "2026-04-01")
    try:
        assert cli.main(["-q", "run", "--ds", "2026-04-01"]) == 3
        assert "error: raw.events ds=2026-04-01: the partition exists but holds no rows" in capsys.readouterr().err
    finally:
        warehouse.delete_partition("raw.events", "2026-04-01")
    assert _bi_state() == before


def test_every_seeded_day_passes_the_recent_days_checks(published):
    # No false alarms on ordinary days: each day of the synthetic shop (weekends, promotions, its own dirt)
    # against the days before it, for every raw table.
    from core import settings
    from jobs import raw_checks

    s = settings.load()
    for table in ("raw.events", "raw.orders", "raw.users"):
        days = warehouse.partitions(table)
        assert len(days) == 40
        flagged = {d: p for d in days if (p := raw_checks.recent_problems(table, d, s))}
        assert flagged == {}, flagged
