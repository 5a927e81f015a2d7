"""All warehouse I/O: paths, partitions, Spark and Arrow reads and writes of the tables in ``core.tables``.

Hive layout ``<warehouse>/<layer>/<table>/ds=YYYY-MM-DD/``. Writes replace whole ``ds`` partitions, so
reruns and backfills never duplicate rows. Jobs never build paths by hand: they call the functions here.

PySpark is imported lazily so that the trainer (no JVM) can use the Arrow side.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from core import locks
from core import settings as settings_mod
from core.errors import PlatformError
from core.tables import PARTITION_COLUMN, SPARK_TYPES, table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession


log = logging.getLogger(__name__)


class TableNotFound(PlatformError):
    """A table or partition the job needs does not exist yet."""

    hint = "seed a warehouse (segments seed) or build the upstream stage for that date first"


def warehouse_root() -> str:
    return settings_mod.load().warehouse


def table_path(name: str) -> str:
    t = table(name)
    return os.path.join(warehouse_root(), t.layer, t.short_name)


def partition_path(name: str, ds: str) -> str:
    return os.path.join(table_path(name), f"{PARTITION_COLUMN}={ds}")


def partitions(name: str) -> list[str]:
    """The ds values present for a table, sorted (local filesystem warehouse)."""
    root = Path(table_path(name))
    if not root.is_dir():
        return []
    prefix = f"{PARTITION_COLUMN}="
    return sorted(
        p.name[len(prefix):]
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and any(f.suffix == ".parquet" for f in p.iterdir())
    )


# --- Spark side ------------------------------------------------------------------------------------
def read_spark(
    spark: "SparkSession",
    name: str,
    ds: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> "DataFrame":
    """Read a table with its declared schema; ``ds`` selects one partition, [since, until) a window.

    Filters are on the partition column, so Spark prunes directories instead of scanning the table.
    """
    from pyspark.sql import functions as F

    t = table(name)
    path = table_path(name)
    if not os.path.isdir(path):
        raise TableNotFound(f"table {name} does not exist yet (looked in {path})")
    df = spark.read.schema(t.spark_ddl()).option("basePath", path).parquet(path)
    if ds is not None:
        df = df.where(F.col(PARTITION_COLUMN) == ds)
    if since is not None:
        df = df.where(F.col(PARTITION_COLUMN) >= since)
    if until is not None:
        df = df.where(F.col(PARTITION_COLUMN) < until)
    return df


def empty_spark(spark: "SparkSession", name: str) -> "DataFrame":
    """A table with no rows, with its declared schema: what a shop without that raw table reads."""
    return spark.createDataFrame([], table(name).spark_ddl())


def conform(df: "DataFrame", name: str) -> "DataFrame":
    """Select the declared columns in order, cast to the declared types (fails on a missing column)."""
    from pyspark.sql import functions as F

    t = table(name)
    missing = [c for c in t.all_columns() if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: DataFrame lacks declared columns {missing}")
    types = dict(t.columns) | ({PARTITION_COLUMN: "string"} if t.partitioned else {})
    return df.select([F.col(c).cast(SPARK_TYPES[types[c]]).alias(c) for c in t.all_columns()])


def write_spark(df: "DataFrame", name: str) -> None:
    """Replace exactly the ds partitions present in ``df`` (dynamic partition overwrite)."""
    t = table(name)
    out = conform(df, name)
    writer = out.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
    if t.partitioned:
        writer = writer.partitionBy(PARTITION_COLUMN)
    with _writing(name):  # Spark stages the job's files in <table>/.spark-staging-<job id>
        writer.parquet(table_path(name))


def write_spark_dates(df: "DataFrame", name: str, dates: Iterable[str]) -> list[str]:
    """Replace the partitions of ``dates`` with the rows of ``df`` (rows of other dates are not expected);
    return the dates that got no row and so lost their old partition.

    Spark's dynamic overwrite replaces only the partitions that have rows: a date rebuilt empty (every row
    of the day quarantined, no active user left) would otherwise keep its stale rows. A partition the write
    left alone keeps its fingerprint; no extra Spark job is needed to tell which dates had rows.
    """
    existing = set(partitions(name))
    before = {d: partition_fingerprint(name, d) for d in sorted(set(dates)) if d in existing}
    write_spark(df, name)
    emptied = [d for d, fingerprint in before.items()
               if partition_fingerprint(name, d) == fingerprint and delete_partition(name, d)]
    for d in emptied:
        log.info("%s ds=%s: no rows any more, old partition removed", name, d)
    return emptied


# --- partition metadata (planning) -------------------------------------------------------------------
def partition_fingerprint(name: str, ds: str) -> str:
    """Names, sizes, inodes and modification times of a partition's data files, hashed: it changes whenever
    the partition is written again (every write here creates new files before removing the old ones, so
    they get new inodes even within one clock tick), so a stored fingerprint tells whether the partition is
    still the one something was built from."""
    files = sorted((f.name, st.st_size, st.st_ino, st.st_mtime_ns)
                   for f in Path(partition_path(name, ds)).iterdir()
                   if f.suffix == ".parquet" and (st := f.stat()))
    return hashlib.sha1(repr(files).encode()).hexdigest()[:16]


def timestamp_days(name: str, ds: str, column: str) -> set[str]:
    """The UTC dates ('YYYY-MM-DD') of the non-null values of a timestamp column in one partition.

    Streamed record batch by record batch, one column: planning reads a few bytes per row and keeps only
    the set of dates, never the rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    t = table(name)
    if dict(t.columns).get(column) != "timestamp":
        raise ValueError(f"{name}.{column} is not a timestamp column")
    dataset = pads.dataset(partition_path(name, ds), format="parquet", schema=t.arrow_schema())
    days: set[str] = set()
    for batch in dataset.to_batches(columns=[column]):
        # The declared type is timestamp[us, tz=UTC], so the date is that of the UTC instant.
        dates = pc.unique(pc.cast(batch.column(0), pa.date32())).drop_null()
        days.update(d.isoformat() for d in dates.to_pylist())
    return days


# --- Arrow / pandas side (generator, trainer, publisher) --------------------------------------------
def read_arrow(name: str, ds: str | None = None, columns: Iterable[str] | None = None) -> "pa.Table":
    """Read one partition (or an unpartitioned table) as Arrow, with the declared schema."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    t = table(name)
    if t.partitioned and ds is None:
        raise ValueError(f"{name} is partitioned by ds: pass ds")
    path = partition_path(name, ds) if t.partitioned else table_path(name)
    if not os.path.isdir(path):
        hint = f" for ds={ds}" if ds else ""
        raise TableNotFound(f"table {name} has no data{hint} (looked in {path})")
    cols = list(columns) if columns is not None else t.column_names
    data_cols = [c for c in cols if c != PARTITION_COLUMN]
    dataset = pads.dataset(path, format="parquet", schema=t.arrow_schema())
    result = dataset.to_table(columns=data_cols)
    if t.partitioned and PARTITION_COLUMN in cols:
        result = result.append_column(PARTITION_COLUMN, pa.array([ds] * result.num_rows, pa.string()))
    return result


def read_pandas(name: str, ds: str | None = None, columns: Iterable[str] | None = None) -> "pd.DataFrame":
    return read_arrow(name, ds, columns).to_pandas()


def write_arrow(name: str, data: "pa.Table", ds: str | None = None) -> None:
    """Replace one partition (or the whole unpartitioned table) with ``data``.

    The new files are written beside the old ones and swapped in by rename, so a crash mid-write
    leaves the previous version in place.
    """
    import pyarrow.parquet as pq

    t = table(name)
    if t.partitioned and ds is None:
        raise ValueError(f"{name} is partitioned by ds: pass ds")
    target = Path(partition_path(name, ds) if t.partitioned else table_path(name))
    schema = t.arrow_schema()
    data = data.select(t.column_names).cast(schema)
    with _writing(name):
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        staging.mkdir(parents=True)
        pq.write_table(data, staging / "part-00000.parquet", compression="snappy")
        trash = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        if target.exists():
            target.rename(trash)
        staging.rename(target)
        shutil.rmtree(trash, ignore_errors=True)


def delete_partition(name: str, ds: str) -> bool:
    """Remove one partition (a rebuilt day that has no rows any more, ``write_spark_dates``); return
    whether it existed.

    Spark's dynamic overwrite replaces only the partitions that have rows, so a day that became empty
    would otherwise keep its stale rows. One rename takes it out of sight, then its files are removed.
    """
    if not table(name).partitioned:
        raise ValueError(f"{name} is not partitioned: it has no partition ds={ds}")
    target = Path(partition_path(name, ds))
    if not target.exists():
        return False
    with _writing(name):
        trash = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        target.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    return True


# --- leftovers of interrupted writes ------------------------------------------------------------------
# What the writers here make in a table folder while they write, and a killed one leaves behind: Spark's
# dynamic partition overwrite stages a job in '.spark-staging-<job id>' (its '_temporary' inside; a plain
# overwrite uses '_temporary' itself), write_arrow and the swaps '.ds=<ds>.<uuid>.tmp' / '.old' (for an
# unpartitioned table '.<table>.<uuid>.tmp' / '.old' in the layer folder), staging_dir '.<purpose>-<uuid>'.
# Readers skip names starting with '.' or '_', but a glob such as DuckDB's '*/*.parquet' does not.
_LEFTOVER = re.compile(r"\.spark-staging-.+|_temporary|\..+\.[0-9a-f]{32}\.(tmp|old)|\.[\w-]+-[0-9a-f]{32}")


@contextlib.contextmanager
def _writing(name: str) -> Iterator[None]:
    """Declare this process a writer of ``name`` while the block runs; first, if no other process is
    writing the table, remove the leftovers of interrupted writes (a live writer's staging is never
    touched: ``core.locks.table_writer``)."""
    with locks.table_writer(name, lambda: remove_leftovers(name)):
        yield


def remove_leftovers(name: str) -> list[str]:
    """Remove the staging directories interrupted writes left in table ``name``; return their names.

    Only safe while no other process writes the table: warehouse writes call it through ``_writing``.
    """
    folder = Path(table_path(name))
    candidates = list(folder.iterdir()) if folder.is_dir() else []
    if not table(name).partitioned and folder.parent.is_dir():
        candidates += folder.parent.glob(f".{folder.name}.*")  # write_arrow stages it beside the table
    found = sorted(p for p in candidates if p.is_dir() and _LEFTOVER.fullmatch(p.name))
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    if found:
        log.info("%s: removed what interrupted writes left: %s", name, ", ".join(p.name for p in found))
    return [p.name for p in found]


# --- staged partition swaps (ingest) ------------------------------------------------------------------
SUCCESS_MARKER = "_SUCCESS"  # empty file written last into a complete partition (Spark/Hadoop, Airflow sensors)


@contextlib.contextmanager
def staging_dir(name: str, purpose: str = "staging") -> Iterator[Path]:
    """A fresh directory inside the table folder, removed on exit whatever happens.

    Its name starts with '.', so Spark, ``partitions`` and Hive-style readers ignore it while it exists, and
    it is on the same filesystem as the partitions, so ``swap_partitions`` moves them in by rename.
    """
    root = Path(table_path(name))
    with _writing(name):
        root.mkdir(parents=True, exist_ok=True)
        staged = root / f".{purpose}-{uuid.uuid4().hex}"
        staged.mkdir()
        try:
            yield staged
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def staged_partitions(staged: Path) -> list[str]:
    """The ds values of the ``ds=...`` directories in a staging directory, sorted."""
    prefix = f"{PARTITION_COLUMN}="
    return sorted(p.name[len(prefix):] for p in staged.iterdir() if p.is_dir() and p.name.startswith(prefix))


def swap_partitions(name: str, staged: Path, dates: Iterable[str]) -> list[str]:
    """Move the staged ``ds=...`` directories of ``dates`` into the table, each replacing the partition of
    the same ds (old one renamed away, new one renamed in, old one deleted); return the ds values that
    replaced an existing partition. Each partition is whole at every instant: a reader sees the old or the
    new one, never a mix. Other partitions are untouched."""
    replaced = []
    with _writing(name):
        for ds in sorted(dates):
            source = staged / f"{PARTITION_COLUMN}={ds}"
            target = Path(partition_path(name, ds))
            trash = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
            if target.exists():
                target.rename(trash)
                replaced.append(ds)
            source.rename(target)
            shutil.rmtree(trash, ignore_errors=True)
    return replaced


def partition_rows(name: str, ds: str) -> int | None:
    """Rows of one stored partition from its Parquet footers (no scan); None when it does not exist."""
    path = Path(partition_path(name, ds))
    return parquet_rows(path) if path.is_dir() else None


def parquet_rows(directory: Path) -> int:
    """Rows of the Parquet files of one directory, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in directory.iterdir() if f.suffix == ".parquet")
