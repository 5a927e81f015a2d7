"""`segments seed` marks each raw partition complete, as `segments ingest` does; nothing reads the marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import warehouse
from jobs import raw_checks
from synthetic import generator

END, DAYS = "2024-03-31", 3
DATES = ["2024-03-29", "2024-03-30", "2024-03-31"]
RAW = ("raw.events", "raw.orders", "raw.users")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    home = tmp_path_factory.mktemp("seeded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        for var in ("SEGMENTS_WAREHOUSE", "SEGMENTS_RAW_TABLES"):
            mp.delenv(var, raising=False)
        generator.generate(60, DAYS, END, seed=3, progress=False)
        yield home


@pytest.fixture()
def at_home(seeded, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(seeded))
    for var in ("SEGMENTS_WAREHOUSE", "SEGMENTS_RAW_TABLES"):
        monkeypatch.delenv(var, raising=False)
    return seeded


@pytest.mark.parametrize("name", RAW)
def test_every_raw_partition_gets_an_empty_marker_after_its_data(at_home, name):
    assert warehouse.partitions(name) == DATES  # the marker is not a partition of its own, nor data
    for ds in DATES:
        folder = Path(warehouse.partition_path(name, ds))
        marker = folder / warehouse.SUCCESS_MARKER
        assert sorted(f.name for f in folder.iterdir()) == ["_SUCCESS", "part-00000.parquet"]
        assert marker.stat().st_size == 0
        assert marker.stat().st_mtime_ns >= (folder / "part-00000.parquet").stat().st_mtime_ns  # written last


def test_readers_and_the_raw_schema_check_ignore_the_marker(at_home):
    for name in RAW:
        for ds in DATES:
            assert warehouse.read_arrow(name, ds).num_rows == warehouse.partition_rows(name, ds)
            assert raw_checks.schema_problems(name, ds, None) == []


def test_the_eval_table_is_not_a_raw_partition_and_gets_no_marker(at_home):
    folder = Path(warehouse.table_path("eval.planted_personas"))
    assert not (folder / warehouse.SUCCESS_MARKER).exists()


def test_a_seed_again_replaces_the_partition_and_marks_it_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMENTS_WAREHOUSE", raising=False)
    generator.generate(60, 1, END, seed=3, progress=False, raw_tables=("raw.orders",))
    folder = Path(warehouse.partition_path("raw.orders", END))
    (folder / "old-file").touch()
    generator.generate(60, 1, END, seed=3, progress=False, raw_tables=("raw.orders",))
    assert sorted(f.name for f in folder.iterdir()) == ["_SUCCESS", "part-00000.parquet"]  # a new folder
    assert not Path(warehouse.partition_path("raw.events", END)).exists()  # only the tables written
