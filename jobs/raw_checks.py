"""The raw gate's checks beyond the expectation suite: what a broken feed gets wrong without breaking a row.

- ``schema_problems``: every file of the partition is readable Parquet (every page decodes), every
  required column is there, every declared column has its declared type, and no column the previous
  partition had is gone. Checked with pyarrow before Spark reads a row, so a bad file gives one line
  instead of a Spark traceback, and a lost column is not read as nulls that the suite's checks skip.
- ``rejection_problems``: the share of rows cleaning would drop or quarantine (cleaning's own rules,
  ``jobs.features.cleaning.rejections``) is at most ``SEGMENTS_GATE_MAX_REJECTED``.
- ``recent_problems``: rows, users, the median of the scale column (price, amount) and the mix of the
  category column (event types, statuses) against the ``SEGMENTS_GATE_RECENT_DAYS`` partitions before ds
  (DuckDB over their Parquet files), within the thresholds of ``core.settings``.

Each returns ``Problem``s; ``jobs.quality`` runs them and turns them into the gate's one-line message.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core import tables, warehouse
from core.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame

MIN_RECENT = 3  # fewer earlier partitions than this: nothing to compare with yet (a new shop, a new table)


@dataclass(frozen=True)
class Problem:
    check: str  # schema | cleaning | volume | scale | mix
    column: str | None
    detail: str


@dataclass(frozen=True)
class RecentCheck:
    """What ``recent_problems`` compares for one raw table (``None``: not compared)."""

    users: str | None = "user_id"  # distinct values counted as the day's users
    scale: str | None = None  # numeric column whose median keeps its scale (a unit change moves it)
    mix: str | None = None  # categorical column whose shares stay put (a lost event type moves them)


RECENT_CHECKS: dict[str, RecentCheck] = {
    "raw.events": RecentCheck(scale="price", mix="event_type"),
    "raw.orders": RecentCheck(scale="amount", mix="status"),
    "raw.users": RecentCheck(users=None),  # a snapshot: one row per user, its rows are its users
}


# --- schema ----------------------------------------------------------------------------------------------
def _type_ok(declared: str, actual: "pa.DataType") -> bool:
    """Whether Spark reads a Parquet column of ``actual`` type as the declared type without loss."""
    import pyarrow as pa

    t = pa.types
    if declared == "string":
        return t.is_string(actual) or t.is_large_string(actual)
    if declared == "int":
        return actual in (pa.int8(), pa.int16(), pa.int32())
    if declared == "long":
        return actual in (pa.int8(), pa.int16(), pa.int32(), pa.int64())
    if declared == "double":
        return t.is_floating(actual)
    if declared == "bool":
        return t.is_boolean(actual)
    if declared == "timestamp":
        return t.is_timestamp(actual)
    return True


def _columns(directory: Path) -> tuple[dict[str, "pa.DataType"], list[str]]:
    """The columns (name -> type) of a partition's Parquet files, and the files that cannot be read (a
    truncated file, a corrupt page: read one row group at a time, a few MB of memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, pa.DataType] = {}
    unreadable = []
    for f in sorted(directory.glob("*.parquet")):
        try:
            parquet = pq.ParquetFile(f)
            schema = parquet.schema_arrow
            for group in range(parquet.num_row_groups):  # every page decodes (Spark would fail on it later)
                parquet.read_row_group(group)
        except (OSError, pa.ArrowException) as exc:
            unreadable.append(f"{f.name} ({str(exc).splitlines()[0]})")
            continue
        for name, typ in zip(schema.names, schema.types):
            columns.setdefault(name, typ)
    return columns, unreadable


def schema_problems(table_name: str, ds: str, previous: str | None) -> list[Problem]:
    """The partition's files against the table's declaration and the ``previous`` partition's columns."""
    t = tables.table(table_name)
    columns, unreadable = _columns(Path(warehouse.partition_path(table_name, ds)))
    problems = [Problem("schema", None, f"file {u} is not readable Parquet") for u in unreadable]
    if unreadable:
        return problems
    before = set(_columns(Path(warehouse.partition_path(table_name, previous)))[0]) if previous else set()
    for name, declared in t.columns:
        if name not in columns:
            if name in t.required:
                problems.append(Problem("schema", name, "required column is missing"))
            elif name in before:
                problems.append(Problem("schema", name, f"column is missing (ds={previous} had it)"))
        elif not _type_ok(declared, columns[name]):
            problems.append(Problem("schema", name, f"type {columns[name]}, declared {declared}"))
    return problems


# --- cleaning --------------------------------------------------------------------------------------------
def rejection_problems(partition: "DataFrame", total: int, table_name: str, late_days: int, max_share: float
                       ) -> list[Problem]:
    """Cleaning may drop or quarantine at most ``max_share`` of the partition's ``total`` rows (one Spark
    job; a row per reason reaches the driver)."""
    from jobs.features.cleaning import rejections

    counts = {r["reason"]: r["rows"] for r in rejections(partition, table_name, late_days).collect()}
    rejected = sum(counts.values())
    if not total or rejected / total <= max_share:
        return []
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return [Problem("cleaning", None, f"cleaning would drop or quarantine {rejected:,} of {total:,} rows "
                    f"({rejected / total:.1%}, at most {max_share:.1%}): {reasons}")]


# --- recent days -----------------------------------------------------------------------------------------
@dataclass
class DayStats:
    rows: int
    users: int | None = None
    scale: float | None = None
    mix: dict[str, int] = field(default_factory=dict)  # category -> rows


def recent_partitions(table_name: str, ds: str, days: int) -> list[str]:
    """The ``days`` latest partitions before ds that hold rows (footers only), newest first."""
    earlier = [p for p in reversed(warehouse.partitions(table_name)) if p < ds]
    found = []
    for p in earlier:
        if warehouse.partition_rows(table_name, p):
            found.append(p)
            if len(found) == days:
                break
    return found


def day_stats(table_name: str, dates: list[str]) -> dict[str, DayStats]:
    """Rows, users, the scale column's median and the category counts of each partition (DuckDB)."""
    import duckdb

    check = RECENT_CHECKS[table_name]
    files = [str(f) for d in dates for f in Path(warehouse.partition_path(table_name, d)).glob("*.parquet")]
    if not files:
        return {}
    con = duckdb.connect()
    try:
        con.read_parquet(files, filename=True, union_by_name=True).create_view("files")
        con.execute("CREATE VIEW p AS SELECT *, regexp_extract(filename, '.*/ds=([0-9-]+)/', 1) AS _ds FROM files")
        users = f'count(DISTINCT "{check.users}")' if check.users else "NULL"
        scale = f'median("{check.scale}")' if check.scale else "NULL"
        stats = {d: DayStats(int(n), u, None if m is None else float(m))
                 for d, n, u, m in con.execute(f"SELECT _ds, count(*), {users}, {scale} FROM p GROUP BY _ds")
                 .fetchall()}
        if check.mix:
            for d, value, n in con.execute(f'SELECT _ds, "{check.mix}", count(*) FROM p GROUP BY ALL').fetchall():
                stats[d].mix[str(value)] = int(n)
    finally:
        con.close()
    return stats


def compare_recent(table_name: str, today: DayStats, recent: list[DayStats], s: Settings) -> list[Problem]:
    """Today's partition against the recent ones (pure: the thresholds come from the settings)."""
    if len(recent) < MIN_RECENT:
        return []
    check, n = RECENT_CHECKS[table_name], len(recent)
    baseline_rows = statistics.median(r.rows for r in recent)
    if baseline_rows < s.gate_min_rows:
        return []
    where = f"the median of the {n} previous partitions"
    low, high = s.gate_volume_range
    problems = []
    volumes = [("rows", None, today.rows, baseline_rows)]
    if check.users:
        volumes.append(("users", check.users, today.users, statistics.median(r.users or 0 for r in recent)))
    for what, column, value, base in volumes:
        if value is None or not base:
            continue
        ratio = value / base
        if not low <= ratio <= high:
            problems.append(Problem("volume", column, f"{value:,} {what}, {ratio:.2f}x {where} ({base:,.0f}); "
                                    f"allowed {low:g}x to {high:g}x"))
    scales = [r.scale for r in recent if r.scale]
    if check.scale and today.scale and scales and today.rows >= s.gate_min_rows:
        base = statistics.median(scales)
        ratio = today.scale / base
        if not 1 / s.gate_max_scale <= ratio <= s.gate_max_scale:
            problems.append(Problem("scale", check.scale, f"median {today.scale:,.2f}, {ratio:.3g}x {where} "
                                    f"({base:,.2f}); allowed within {s.gate_max_scale:g}x (a unit change?)"))
    if check.mix and today.mix and today.rows >= s.gate_min_rows:
        pooled: dict[str, int] = {}
        for r in recent:
            for k, v in r.mix.items():
                pooled[k] = pooled.get(k, 0) + v
        total_before, total_now = sum(pooled.values()), sum(today.mix.values())
        shifts = {k: today.mix.get(k, 0) / total_now - pooled.get(k, 0) / total_before
                  for k in set(pooled) | set(today.mix)}
        worst = max(shifts, key=lambda k: abs(shifts[k]))
        if abs(shifts[worst]) > s.gate_max_mix_shift:
            now, before = today.mix.get(worst, 0) / total_now, pooled.get(worst, 0) / total_before
            problems.append(Problem("mix", check.mix, f"share of {worst!r} {now:.1%}, {before:.1%} in the {n} "
                                    f"previous partitions; allowed to move {s.gate_max_mix_shift:.0%}"))
    return problems


def recent_problems(table_name: str, ds: str, s: Settings) -> list[Problem]:
    """Today's partition against the ``gate_recent_days`` partitions before it."""
    recent = recent_partitions(table_name, ds, s.gate_recent_days)
    if len(recent) < MIN_RECENT:
        return []
    stats = day_stats(table_name, [ds, *recent])
    if ds not in stats:  # an empty partition: the gate says so before it gets here
        return []
    return compare_recent(table_name, stats[ds], [stats[d] for d in recent if d in stats], s)
