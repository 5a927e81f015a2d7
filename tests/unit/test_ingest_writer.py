"""Writing an ingest: staging in a hidden directory, the swap of whole partitions, the _SUCCESS marker,
idempotent re-ingests, and nothing left behind when something fails (core/warehouse.py, jobs/ingest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import warehouse
from jobs.ingest import writer
from jobs.ingest.errors import IngestError
from tests.unit.test_ingest_checks import HEADER, orders
from tests.unit.test_ingest_load import USERS, orders_mapping, run, write_csv


def table_folder() -> list[str]:
    return sorted(p.name for p in Path(warehouse.table_path("raw.orders")).iterdir())


def test_the_staging_directory_is_hidden_and_removed_whatever_happens(platform_home):
    with pytest.raises(RuntimeError):
        with warehouse.staging_dir("raw.orders", "ingest") as staged:
            assert staged.parent == Path(warehouse.table_path("raw.orders")) and staged.name.startswith(".ingest-")
            (staged / "ds=2026-03-01").mkdir()
            (staged / "ds=2026-03-01" / "part.parquet").write_bytes(b"")
            assert warehouse.partitions("raw.orders") == []  # readers do not see it
            raise RuntimeError("boom")
    assert table_folder() == []


def test_swap_replaces_the_staged_days_only(platform_home):
    for ds in ("2026-03-01", "2026-03-02"):
        (Path(warehouse.partition_path("raw.orders", ds))).mkdir(parents=True)
        (Path(warehouse.partition_path("raw.orders", ds)) / "old.parquet").write_text("old")
    with warehouse.staging_dir("raw.orders") as staged:
        for ds in ("2026-03-02", "2026-03-03"):
            (staged / f"ds={ds}").mkdir()
            (staged / f"ds={ds}" / "new.parquet").write_text("new")
        assert warehouse.staged_partitions(staged) == ["2026-03-02", "2026-03-03"]
        assert warehouse.swap_partitions("raw.orders", staged, ["2026-03-02", "2026-03-03"]) == ["2026-03-02"]
    assert table_folder() == ["ds=2026-03-01", "ds=2026-03-02", "ds=2026-03-03"]  # no trash, no staging
    files = {ds: sorted(p.name for p in Path(warehouse.partition_path("raw.orders", ds)).iterdir())
             for ds in ("2026-03-01", "2026-03-02", "2026-03-03")}
    assert files == {"2026-03-01": ["old.parquet"], "2026-03-02": ["new.parquet"], "2026-03-03": ["new.parquet"]}


def test_every_partition_gets_a_success_marker_and_a_reingest_gives_identical_rows(platform_home, tmp_path):
    write_csv(tmp_path / "orders-1.csv", HEADER, orders(1, 3, day="2026-03-01") + orders(10, 2, day="2026-03-02"))
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(20, 2, day="2026-03-03"))
    mapping = orders_mapping(tmp_path)
    run(mapping)
    for ds in ("2026-03-01", "2026-03-02", "2026-03-03"):
        files = sorted(p.name for p in Path(warehouse.partition_path("raw.orders", ds)).iterdir())
        assert files == ["_SUCCESS", "data_0.parquet"]  # the marker: empty, ignored by readers
        assert (Path(warehouse.partition_path("raw.orders", ds)) / "_SUCCESS").stat().st_size == 0
    before = {ds: warehouse.read_arrow("raw.orders", ds) for ds in warehouse.partitions("raw.orders")}
    results, _ = run(mapping)
    assert results[0].replaced == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert {ds: warehouse.read_arrow("raw.orders", ds) for ds in warehouse.partitions("raw.orders")} == before
    assert table_folder() == ["ds=2026-03-01", "ds=2026-03-02", "ds=2026-03-03"]


def test_ingesting_a_subset_of_days_replaces_only_those_days(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 3, day="2026-03-01") + orders(10, 2, day="2026-03-02"))
    run(orders_mapping(tmp_path))
    untouched = warehouse.partition_fingerprint("raw.orders", "2026-03-01")
    write_csv(tmp_path / "orders.csv", HEADER, orders(10, 4, day="2026-03-02"))  # a corrected export of 03-02
    results, _ = run(orders_mapping(tmp_path))
    assert results[0].replaced == ["2026-03-02"]
    assert warehouse.partition_fingerprint("raw.orders", "2026-03-01") == untouched
    assert warehouse.partition_rows("raw.orders", "2026-03-02") == 4


def test_a_failure_while_writing_leaves_no_staging_and_the_old_partitions(platform_home, tmp_path, monkeypatch):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 3))
    run(orders_mapping(tmp_path))
    fingerprint = warehouse.partition_fingerprint("raw.orders", "2026-03-01")
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 4))

    def broken(*args):
        raise IngestError("staged ds=2026-03-01 has 3 rows, 4 were loaded")

    monkeypatch.setattr(writer, "check_staged", broken)
    with pytest.raises(IngestError, match="4 were loaded"):
        run(orders_mapping(tmp_path))
    assert table_folder() == ["ds=2026-03-01"]  # the staging directory is gone
    assert warehouse.partition_fingerprint("raw.orders", "2026-03-01") == fingerprint


def test_staged_files_must_hold_the_loaded_rows_with_the_contract_schema(platform_home, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = warehouse.table("raw.orders")
    staged = tmp_path / "staged"
    (staged / "ds=2026-03-01").mkdir(parents=True)
    rows = pa.Table.from_pylist([{"order_id": "1", "user_id": "u", "amount": 1.0}], schema=t.arrow_schema())
    pq.write_table(rows, staged / "ds=2026-03-01" / "a.parquet")
    writer.check_staged(t, staged, {"2026-03-01": 1})
    with pytest.raises(IngestError, match="has 1 rows, 2 were loaded"):
        writer.check_staged(t, staged, {"2026-03-01": 2})
    with pytest.raises(IngestError, match="differ from the days loaded"):
        writer.check_staged(t, staged, {"2026-03-01": 1, "2026-03-02": 1})
    pq.write_table(rows.set_column(4, "item_count", pa.array([1], pa.int64())), staged / "ds=2026-03-01" / "a.parquet")
    with pytest.raises(IngestError, match="has schema"):
        writer.check_staged(t, staged, {"2026-03-01": 1})


def test_users_are_one_snapshot_partition_at_the_latest_ingested_day_or_the_given_one(platform_home, tmp_path):
    write_csv(tmp_path / "users.csv", "id,signed_up", ["u1,2025-12-01 08:00:00", "u2,"])
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 2, day="2026-03-01") + orders(5, 1, day="2026-03-04"))
    both = orders_mapping(tmp_path, extra=USERS)
    results, _ = run(both)
    assert [(r.name, r.day_rows) for r in results] == [
        ("raw.orders", {"2026-03-01": 2, "2026-03-02": 0, "2026-03-03": 0, "2026-03-04": 1}),
        ("raw.users", {"2026-03-04": 2})]
    assert warehouse.partitions("raw.users") == ["2026-03-04"]  # the latest day of raw.orders
    run(both, snapshot_ds="2026-03-02")
    assert warehouse.partitions("raw.users") == ["2026-03-02", "2026-03-04"]
    users_only = tmp_path / "users.toml"
    users_only.write_text(USERS)
    with pytest.raises(IngestError, match="pass --snapshot-ds|ingests no dated rows"):
        run(users_only)
    results, _ = run(users_only, snapshot_ds="2026-03-05")
    assert results[0].day_rows == {"2026-03-05": 2}
    with pytest.raises(IngestError, match="--snapshot-ds applies to raw.users"):
        run(orders_mapping(tmp_path), snapshot_ds="2026-03-05")


def test_a_users_snapshot_that_shrank_against_the_previous_one_stops_the_ingest(platform_home, tmp_path):
    write_csv(tmp_path / "users.csv", "id,signed_up", [f"u{i}," for i in range(300)])
    mapping = tmp_path / "users.toml"
    mapping.write_text(USERS)
    run(mapping, snapshot_ds="2026-03-01")
    write_csv(tmp_path / "users.csv", "id,signed_up", [f"u{i}," for i in range(100)])
    with pytest.raises(IngestError, match=r"raw.users: the snapshot has 100 rows, 67% fewer than the 300 of "
                                          r"2026-03-01 \(stored\)"):
        run(mapping, snapshot_ds="2026-03-08")


def test_an_empty_source_writes_and_removes_nothing(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 2))
    run(orders_mapping(tmp_path))
    write_csv(tmp_path / "orders.csv", HEADER, [])  # a header, no row: nothing new today
    results, _ = run(orders_mapping(tmp_path))
    assert (results[0].rows, results[0].day_rows, results[0].written) == (0, {}, False)
    assert warehouse.partitions("raw.orders") == ["2026-03-01"] and table_folder() == ["ds=2026-03-01"]
