"""The table catalog: every warehouse table declared once, and all warehouse I/O.

Schemas are data (column name -> type name); Spark and Arrow schemas are derived from them. Every
partitioned table is partitioned by ``ds`` (a ``YYYY-MM-DD`` string, Hive layout
``<warehouse>/<layer>/<table>/ds=YYYY-MM-DD/``). Writes replace whole ``ds`` partitions, so reruns and
backfills never duplicate rows. Jobs never build paths by hand: they call the functions here.

PySpark is imported lazily so that the trainer (no JVM) can use the Arrow side.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from segments import feature_catalog
from segments import settings as settings_mod
from segments.errors import PlatformError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

PARTITION_COLUMN = "ds"

_SPARK_DDL = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "array<double>": "ARRAY<DOUBLE>",
    "map<string,long>": "MAP<STRING, BIGINT>",
}
_FEATURE_TYPES = {"numeric": "double", "categorical": "string", "sequence": "array<double>"}


@dataclass(frozen=True)
class Table:
    name: str  # "<layer>.<table>"
    columns: tuple[tuple[str, str], ...]  # data columns (ds excluded), in storage order
    key: tuple[str, ...]  # unique per partition
    partitioned: bool = True
    description: str = ""

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def all_columns(self) -> list[str]:
        return self.column_names + ([PARTITION_COLUMN] if self.partitioned else [])

    def spark_ddl(self, with_partition: bool = True, only: Iterable[str] | None = None) -> str:
        """Spark DDL of the table (or of the columns ``only``, in that order)."""
        types = dict(self.columns)
        names = list(only) if only is not None else self.column_names
        cols = [f"`{c}` {_SPARK_DDL[types[c]]}" for c in names]
        if self.partitioned and with_partition and only is None:
            cols.append(f"`{PARTITION_COLUMN}` STRING")
        return ", ".join(cols)

    def arrow_schema(self, with_partition: bool = False) -> "pa.Schema":
        import pyarrow as pa

        types = {
            "string": pa.string(),
            "int": pa.int32(),
            "long": pa.int64(),
            "double": pa.float64(),
            "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "array<double>": pa.list_(pa.float64()),
            "map<string,long>": pa.map_(pa.string(), pa.int64()),
        }
        fields = [pa.field(c, types[t]) for c, t in self.columns]
        if self.partitioned and with_partition:
            fields.append(pa.field(PARTITION_COLUMN, pa.string()))
        return pa.schema(fields)


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """Parse 'name:type, name:type' (keeps the declarations below readable)."""
    out = []
    for item in spec.split(","):
        name, _, typ = item.strip().partition(":")
        out.append((name.strip(), typ.strip()))
    return tuple(out)


# --- the feature contract between jobs/ (writes it) and ml/ (reads it) -----------------------------
# Declared once, with descriptions, in segments/feature_catalog.py (docs/features.md is generated from it).
# SEQUENCE_CHANNELS is the fixed order in which the LSTM reads the daily sequence (oldest day first).
NUMERIC_FEATURES: tuple[str, ...] = feature_catalog.NUMERIC_FEATURES
CATEGORICAL_FEATURES: tuple[str, ...] = feature_catalog.CATEGORICAL_FEATURES
SEQUENCE_CHANNELS: tuple[str, ...] = feature_catalog.SEQUENCE_CHANNELS
UNKNOWN = "unknown"

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "raw.events",
            _cols(
                "event_id:string, user_id:string, event_ts:timestamp, event_type:string, product_id:string,"
                " category:string, price:double, quantity:int, session_id:string, dwell_seconds:double,"
                " device:string"
            ),
            key=("event_id",),
            description="Clickstream events, partitioned by the UTC date they arrived.",
        ),
        Table(
            "raw.orders",
            _cols(
                "order_id:string, user_id:string, order_ts:timestamp, amount:double, item_count:int,"
                " discount_amount:double, status:string"
            ),
            key=("order_id",),
            description="Orders (status completed/cancelled/refunded).",
        ),
        Table(
            "raw.users",
            _cols(
                "user_id:string, signup_ts:timestamp, birth_year:int, gender:string, occupation:string,"
                " city_tier:string"
            ),
            key=("user_id",),
            description="Daily snapshot of user attributes (attributes may be missing).",
        ),
        Table(
            "eval.planted_personas",
            _cols("user_id:string, persona:string"),
            key=("user_id",),
            partitioned=False,
            description="Persona planted by the synthetic generator. Read by evaluation code only.",
        ),
        Table(
            "features.user_daily",
            tuple((c.name, c.type) for c in feature_catalog.DAILY_COLUMNS),
            key=("user_id",),
            description="One row per user and UTC day with any event or order (cleaned); see docs/features.md.",
        ),
        Table(
            "features.user_features",
            (
                ("user_id", "string"),
                *[(f.name, _FEATURE_TYPES[f.kind]) for f in feature_catalog.FEATURES],
            ),
            key=("user_id",),
            description="One row per user active in the 90 days up to ds; training and scoring read it.",
        ),
        Table(
            "segments.user_segments",
            _cols(
                "user_id:string, segment_id:int, segment_name:string, confidence:double,"
                " probabilities:array<double>, model_name:string, model_version:string"
            ),
            key=("user_id",),
            description="The segment label of every user of features.user_features for ds.",
        ),
        Table(
            "segments.segment_profiles",
            _cols(
                "segment_id:int, segment_name:string, users:long, share:double, avg_confidence:double,"
                " avg_recency_days:double, avg_orders_90d:double, avg_revenue_90d:double,"
                " avg_views_30d:double, avg_discount_share_90d:double, avg_activity_trend:double,"
                " model_version:string"
            ),
            key=("segment_id",),
            description="Per ds and segment: size, share and the mean of key features.",
        ),
        Table(
            "features.user_lifetime",
            _cols(
                "user_id:string, first_seen_ds:string, last_seen_ds:string, first_purchase_ds:string,"
                " last_purchase_ds:string, lifetime_orders:long, lifetime_revenue:double,"
                " lifetime_active_days:long"
            ),
            key=("user_id",),
            description="Cumulative per-user state over every user_daily day <= ds (jobs/lifetime.py).",
        ),
        Table(
            "features.user_window",
            (
                ("user_id", "string"),
                *[(c, "long") for c in ("active_days", "sessions", "views", "searches", "add_to_carts",
                                        "purchases", "orders", "product_days", "cancelled_orders",
                                        "refunded_orders", "events")],
                *[(f"events_{name}", "long") for name, _, _ in feature_catalog.DAYPARTS],
                ("events_weekend", "long"),
                ("events_holiday", "long"),
                *[(c, "double") for c in ("revenue", "discount_amount", "dwell_seconds")],
                ("last_seen_ds", "string"),
                ("last_purchase_ds", "string"),
                ("holiday_country", "string"),
            ),
            key=("user_id",),
            description="Per user active in the 90 days up to ds: sums of user_daily over those days, "
                        "updated by the days entering and leaving the window (jobs/window_state.py).",
        ),
        Table(
            "features.user_category_window",
            _cols("user_id:string, category:string, events:long, last_seen_ds:string"),
            key=("user_id", "category"),
            description="Per user and category with events in the 90 days up to ds: events and last day "
                        "(jobs/window_state.py).",
        ),
        Table(
            "features.user_daily_inputs",
            _cols("raw_table:string, raw_ds:string, fingerprint:string, params_fit_ds:string, late_days:int"),
            key=("raw_table", "raw_ds"),
            description="Per user_daily day: the raw partitions (with their fingerprints), cleaning "
                        "parameters and lookback it was built from; a lookback day is rebuilt only when they "
                        "changed.",
        ),
        Table(
            "features.cleaning_params",
            _cols(
                "table_name:string, column_name:string, param:string, quantile:double, value:double,"
                " fitted_rows:long, window_start:string"
            ),
            key=("table_name", "column_name", "param"),
            description="Winsorisation caps and imputation medians fitted on the raw window ending at ds.",
        ),
        Table(
            "quality.quarantine",
            _cols("table_name:string, reason:string, row_key:string, row_json:string"),
            key=("table_name", "row_key", "reason"),
            description="Impossible raw rows with a reason code, partitioned by the raw partition they came from.",
        ),
        Table(
            "quality.cleaning_log",
            _cols("table_name:string, step:string, column_name:string, detail:string, rows:long"),
            key=("table_name", "step", "column_name", "detail"),
            description="Rows affected by each cleaning step, per raw partition ds.",
        ),
        Table(
            "quality.validation_results",
            _cols(
                "table_name:string, suite:string, success:bool, expectations:long, failed:long,"
                " rows:long, summary:string"
            ),
            key=("table_name",),
            description="Great Expectations outcome per validated table and ds.",
        ),
    ]
}


class TableNotFound(PlatformError):
    """A table or partition the job needs does not exist yet."""

    hint = "seed a warehouse (segments seed) or build the upstream stage for that date first"


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None


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


def conform(df: "DataFrame", name: str) -> "DataFrame":
    """Select the declared columns in order, cast to the declared types (fails on a missing column)."""
    from pyspark.sql import functions as F

    t = table(name)
    missing = [c for c in t.all_columns() if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: DataFrame lacks declared columns {missing}")
    types = dict(t.columns) | ({PARTITION_COLUMN: "string"} if t.partitioned else {})
    return df.select([F.col(c).cast(_SPARK_DDL[types[c]]).alias(c) for c in t.all_columns()])


def write_spark(df: "DataFrame", name: str) -> None:
    """Replace exactly the ds partitions present in ``df`` (dynamic partition overwrite)."""
    t = table(name)
    out = conform(df, name)
    writer = out.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
    if t.partitioned:
        writer = writer.partitionBy(PARTITION_COLUMN)
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
    return [d for d, fingerprint in before.items()
            if partition_fingerprint(name, d) == fingerprint and delete_partition(name, d)]


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
    trash = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    target.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return True
