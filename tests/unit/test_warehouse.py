"""core/warehouse.py: partition paths, Arrow writes and reads, partition days and fingerprints."""

from __future__ import annotations

import pyarrow as pa
import pytest

from core import tables, warehouse


def test_paths_follow_the_hive_layout(platform_home):
    assert warehouse.partition_path("raw.events", "2026-03-01") == str(
        platform_home.resolve() / "warehouse" / "raw" / "events" / "ds=2026-03-01")


def _personas(n: int) -> pa.Table:
    return pa.table({"user_id": [f"u{i}" for i in range(n)], "persona": ["occasional"] * n})


def test_arrow_write_replaces_the_partition_and_reads_back(platform_home):
    schema = tables.table("quality.validation_results").arrow_schema()
    row = {"table_name": "raw.events", "suite": "raw.events", "success": True, "expectations": 7,
           "failed": 0, "rows": 10, "summary": "ok"}
    warehouse.write_arrow("quality.validation_results", pa.Table.from_pylist([row, row], schema=schema), "2026-03-01")
    warehouse.write_arrow("quality.validation_results", pa.Table.from_pylist([row], schema=schema), "2026-03-01")
    back = warehouse.read_arrow("quality.validation_results", "2026-03-01", ["table_name", "ds"])
    assert back.num_rows == 1  # replaced, not appended
    assert back.column("ds").to_pylist() == ["2026-03-01"]
    assert warehouse.partitions("quality.validation_results") == ["2026-03-01"]
    leftovers = [p.name for p in (platform_home / "warehouse" / "quality" / "validation_results").iterdir()]
    assert leftovers == ["ds=2026-03-01"]  # no staging or trash folders left behind


def test_unpartitioned_tables_need_no_ds_and_partitioned_ones_do(platform_home):
    warehouse.write_arrow("eval.planted_personas", _personas(3))
    assert warehouse.read_pandas("eval.planted_personas").shape == (3, 2)
    with pytest.raises(ValueError, match="pass ds"):
        warehouse.read_arrow("raw.events")


def test_missing_partition_is_a_clear_platform_error(platform_home):
    with pytest.raises(warehouse.TableNotFound, match=r"raw.events has no data for ds=2026-03-01"):
        warehouse.read_arrow("raw.events", "2026-03-01")


def _events(*stamps) -> pa.Table:
    schema = tables.table("raw.events").arrow_schema()
    rows = [{"event_id": f"e{i}", "user_id": "u1", "event_ts": when} for i, when in enumerate(stamps)]
    return pa.Table.from_pylist(rows, schema=schema)


def test_timestamp_days_are_the_utc_dates_of_a_partition(platform_home):
    import datetime as dt

    utc = dt.timezone.utc
    # 23:59 UTC on 03-01 is still 03-01; midnight starts 03-02; a null timestamp has no day.
    stamps = [dt.datetime(2026, 3, 1, 23, 59, tzinfo=utc), dt.datetime(2026, 3, 2, 0, 0, tzinfo=utc), None,
              dt.datetime(2026, 3, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))]  # 03-01 21:00 UTC
    warehouse.write_arrow("raw.events", _events(*stamps), "2026-03-02")
    assert warehouse.timestamp_days("raw.events", "2026-03-02", "event_ts") == {"2026-03-01", "2026-03-02"}
    with pytest.raises(ValueError, match="not a timestamp"):
        warehouse.timestamp_days("raw.events", "2026-03-02", "user_id")


def test_a_partition_fingerprint_changes_when_it_is_written_again(platform_home):
    import datetime as dt

    when = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    warehouse.write_arrow("raw.events", _events(when), "2026-03-01")
    first = warehouse.partition_fingerprint("raw.events", "2026-03-01")
    assert warehouse.partition_fingerprint("raw.events", "2026-03-01") == first  # reading changes nothing
    warehouse.write_arrow("raw.events", _events(when), "2026-03-01")  # the same rows, written again
    assert warehouse.partition_fingerprint("raw.events", "2026-03-01") != first


# --- leftovers of interrupted writes -------------------------------------------------------------------
def _leftover(folder, name: str):
    """A staging directory as a killed writer leaves it: files inside, nobody writing."""
    path = folder / name / "_temporary" / "0"
    path.mkdir(parents=True)
    (path / "part-00000.parquet").write_bytes(b"half a file")
    return folder / name


def test_a_write_removes_what_interrupted_writes_left(platform_home, caplog):
    import datetime as dt
    import logging
    import uuid

    when = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    warehouse.write_arrow("raw.events", _events(when), "2026-03-01")
    folder = platform_home / "warehouse" / "raw" / "events"
    left = [_leftover(folder, f".spark-staging-{uuid.uuid4()}"),  # a killed Spark feature job
            _leftover(folder, f".ds=2026-03-01.{uuid.uuid4().hex}.tmp"),  # a killed write_arrow
            _leftover(folder, f".ds=2026-02-28.{uuid.uuid4().hex}.old"),  # ... killed while swapping
            _leftover(folder, f".ingest-{uuid.uuid4().hex}")]  # a killed ingest (staging_dir)
    other = _leftover(folder, ".not-ours")  # hidden, but no writer here makes such a name
    personas = _leftover(platform_home / "warehouse" / "eval", f".planted_personas.{uuid.uuid4().hex}.tmp")
    with caplog.at_level(logging.INFO, logger="core.warehouse"):
        warehouse.write_arrow("raw.events", _events(when), "2026-03-02")
        warehouse.write_arrow("eval.planted_personas", _personas(2))  # staged beside the table folder
    assert not any(p.exists() for p in [*left, personas]) and other.exists()
    assert sorted(p.name for p in folder.iterdir()) == [".not-ours", "ds=2026-03-01", "ds=2026-03-02"]
    assert f"raw.events: removed what interrupted writes left: {', '.join(sorted(p.name for p in left))}" \
        in caplog.text
    assert warehouse.partitions("raw.events") == ["2026-03-01", "2026-03-02"]  # the data is untouched


# A writer of raw.events in another process: an ingest staging directory with a file in it, then it waits.
LIVE_WRITER = """
from core import warehouse
with warehouse.staging_dir("raw.events", "ingest") as staged:
    (staged / "ds=2026-03-05").mkdir()
    (staged / "ds=2026-03-05" / "part-0.parquet").write_bytes(b"being written")
    print(staged, flush=True)
    __import__("time").sleep(600)
"""


def test_a_live_writers_staging_is_kept_and_removed_once_it_was_killed(platform_home):
    import datetime as dt
    import subprocess
    import sys
    from pathlib import Path

    when = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER], stdout=subprocess.PIPE, text=True)
    try:
        staged = Path(writer.stdout.readline().strip())
        assert staged.is_dir()
        # Another date of the same table written meanwhile: the live staging directory is not touched.
        warehouse.write_arrow("raw.events", _events(when), "2026-03-01")
        assert (staged / "ds=2026-03-05" / "part-0.parquet").exists()
    finally:
        writer.kill()  # SIGKILL: its `finally` never runs, so the staging directory stays behind
        writer.wait()
    assert staged.is_dir()
    warehouse.write_arrow("raw.events", _events(when), "2026-03-02")  # the next write of the table
    assert not staged.exists()
    assert warehouse.partitions("raw.events") == ["2026-03-01", "2026-03-02"]
