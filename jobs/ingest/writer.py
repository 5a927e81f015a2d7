"""Write a loaded table as Parquet partitions into a staging directory, check them, mark them complete.

DuckDB writes one ``ds=YYYY-MM-DD`` directory per day (``COPY ... PARTITION_BY``) inside the staging
directory ``core.warehouse.staging_dir`` made in the table folder. Before anything is swapped in, every
staged partition must hold the rows counted at load time and every file the contract's Arrow schema
(int32, timestamp[us, UTC], ...); then the empty ``_SUCCESS`` marker is written into each, last. The swap
itself (``core.warehouse.swap_partitions``) moves the complete directories in, so a partition that has a
``_SUCCESS`` file is always whole.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from core import warehouse
from core.tables import Table
from jobs.ingest.errors import IngestError
from jobs.ingest.load import Loaded
from jobs.ingest.mapping import quote
from jobs.ingest.source import sql_string


def stage(con: duckdb.DuckDBPyConnection, loaded: Loaded, staged: Path) -> dict[str, int]:
    """Write the loaded rows under ``staged``, check them and mark each partition complete; return rows
    per ds."""
    t = loaded.mapping.table
    expected = loaded.partition_rows
    columns = ", ".join(quote(c) for c in t.column_names)
    ds = sql_string(loaded.snapshot) if loaded.snapshot else "ds"
    con.execute(f"COPY (SELECT {columns}, {ds} AS ds FROM {loaded.table}) TO {sql_string(str(staged))} "
                "(FORMAT parquet, PARTITION_BY (ds), COMPRESSION snappy, OVERWRITE_OR_IGNORE)")
    for day, rows in expected.items():  # days without rows: an empty file, so the partition exists
        if rows == 0:
            (staged / f"ds={day}").mkdir()
            pq.write_table(t.arrow_schema().empty_table(), staged / f"ds={day}" / "empty.parquet")
    check_staged(t, staged, expected)
    for day in expected:
        (staged / f"ds={day}" / warehouse.SUCCESS_MARKER).touch()  # last: the partition is complete
    return expected


def check_staged(t: Table, staged: Path, expected: dict[str, int]) -> None:
    """Every staged partition has the expected rows, and every file the contract's schema."""
    name = t.name
    found = warehouse.staged_partitions(staged)
    if found != sorted(expected):
        raise IngestError(f"{name}: staged partitions {found} differ from the days loaded {sorted(expected)}")
    schema = t.arrow_schema()
    for day, rows in expected.items():
        directory = staged / f"ds={day}"
        for file in directory.glob("*.parquet"):
            got = pq.read_schema(file)
            if [(f.name, f.type) for f in got] != [(f.name, f.type) for f in schema]:
                raise IngestError(f"{name}: staged file {file.name} of ds={day} has schema {got}, not {schema}")
        if (stored := warehouse.parquet_rows(directory)) != rows:
            raise IngestError(f"{name}: staged ds={day} has {stored} rows, {rows} were loaded")
