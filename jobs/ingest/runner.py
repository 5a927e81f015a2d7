"""``segments ingest MAPPING``: load -> check -> (dry run: profile) -> stage -> swap, for every table of a mapping.

Nothing is written before every table of the mapping has loaded and passed every check. Then each table is
staged (``writer``) in a hidden directory of its table folder; once all are staged, each day's directory
is swapped in (``core.warehouse.swap_partitions``). Staging directories are removed whatever happens.
Re-ingesting the same input replaces the same partitions with the same rows; days the input has no row
for are left alone.

raw.users is a snapshot: it is written as one partition, at ``snapshot_ds`` or else the latest day the
mapping's dated tables ingest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from core import settings as settings_mod
from core import warehouse
from jobs.ingest import checks, writer
from jobs.ingest.errors import IngestError
from jobs.ingest.load import Loaded, connect, load_table
from jobs.ingest.mapping import load_mapping
from jobs.ingest.profile import build_profile, format_profile

USERS = "raw.users"


@dataclass
class TableResult:
    """What the ingest did (or, in a dry run, would do) for one table."""

    name: str
    rows: int
    source: str  # "3 csv files" / "query"
    day_rows: dict[str, int]  # ds -> rows written
    replaced: list[str] = field(default_factory=list)  # partitions that existed and were replaced
    written: bool = False


def ingest(mapping_path: str | Path, *, dry_run: bool = False, snapshot_ds: str | None = None,
           max_shrink: float | None = None, progress: bool = True,
           echo: Callable[[str], None] = print) -> list[TableResult]:
    """Ingest every table of a mapping file (dry run: print profiles via ``echo``, write nothing)."""
    mapping = load_mapping(mapping_path)
    if snapshot_ds and USERS not in mapping.tables:
        raise IngestError(f"--snapshot-ds applies to raw.users, which {mapping.path.name} does not map")
    s = settings_mod.load()
    max_shrink = s.ingest_max_shrink if max_shrink is None else max_shrink
    con = connect()
    try:
        loaded: dict[str, Loaded] = {}
        for name, tm in mapping.tables.items():  # events, orders, then users (its ds may come from them)
            table = loaded[name] = load_table(con, tm, progress)
            if name == USERS:
                table.snapshot = snapshot_ds or _latest_day(loaded, mapping.path.name)
            if dry_run:
                for line in format_profile(build_profile(con, table)):
                    echo(line)
            checks.run_checks(con, table, _previous(table), max_shrink, s.ingest_shrink_min_rows)
        results = [_result(table) for table in loaded.values()]
        if not dry_run:
            _write(con, loaded, results)
        return results
    finally:
        con.close()


def _latest_day(loaded: dict[str, Loaded], mapping_name: str) -> str:
    days = [d for table in loaded.values() for d in table.day_rows]
    if not days:
        raise IngestError(f"raw.users is a snapshot and {mapping_name} ingests no dated rows to take its day from",
                          hint="pass --snapshot-ds YYYY-MM-DD (the day the users export was taken)")
    return max(days)


def _previous(table: Loaded) -> tuple[str, int] | None:
    """The stored partition just before what is ingested: the day before the first day, or, for a users
    snapshot, the latest earlier snapshot."""
    if table.snapshot:
        earlier = [d for d in warehouse.partitions(table.name) if d < table.snapshot]
        day = earlier[-1] if earlier else None
    elif table.day_rows:
        day = (dt.date.fromisoformat(min(table.day_rows)) - dt.timedelta(days=1)).isoformat()
    else:
        day = None
    rows = warehouse.partition_rows(table.name, day) if day else None
    return (day, rows) if day and rows is not None else None


def _result(table: Loaded) -> TableResult:
    day_rows = table.partition_rows if table.rows else {}  # an empty source writes nothing
    return TableResult(table.name, table.rows, table.described_source, dict(day_rows))


def _write(con: duckdb.DuckDBPyConnection, loaded: dict[str, Loaded], results: list[TableResult]) -> None:
    """Stage every table, then swap each in; the staging directories go whatever happens."""
    with contextlib.ExitStack() as stack:
        staged = {}
        for result in results:
            if not result.day_rows:
                continue  # an empty source writes nothing (and removes nothing)
            directory = stack.enter_context(warehouse.staging_dir(result.name, "ingest"))
            writer.stage(con, loaded[result.name], directory)
            staged[result.name] = directory
        for result in results:
            if result.name in staged:
                result.replaced = warehouse.swap_partitions(result.name, staged[result.name], result.day_rows)
                result.written = True
