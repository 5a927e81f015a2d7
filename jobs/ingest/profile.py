"""The dry run's profile of a loaded table: rows per day, nulls and min/max per column, unused source columns.

Computed on the converted rows (what would be written), so min/max show UTC timestamps and amounts in
units: a wrong time zone or unit shows here before anything is written.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

import duckdb

from core import warehouse
from jobs.ingest.load import Loaded
from jobs.ingest.mapping import DEFAULT_STATUS, STATUS_COLUMN, quote

_WIDTH = 32  # longest value shown


@dataclass
class ColumnProfile:
    name: str
    source: str  # the source column, the expression, or how an absent column is filled
    nulls: int | None = None
    low: str | None = None
    high: str | None = None


@dataclass
class Profile:
    table: str
    source: str  # "3 csv files" / "query"
    rows: int
    day_rows: dict[str, int]
    columns: list[ColumnProfile]
    unused: list[str]  # source columns the mapping does not read
    replaced: list[str] = field(default_factory=list)  # partitions that exist and would be replaced


def build_profile(con: duckdb.DuckDBPyConnection, loaded: Loaded) -> Profile:
    """Profile a loaded table."""
    tm = loaded.mapping
    mapped = list(tm.columns)
    stats = con.execute("SELECT " + ", ".join(
        f"count(*) - count({quote(c)}), CAST(min({quote(c)}) AS VARCHAR), CAST(max({quote(c)}) AS VARCHAR)"
        for c in mapped) + f" FROM {loaded.table}").fetchone() if mapped else ()
    columns = []
    for name in tm.table.column_names:
        if name in tm.columns:
            i = 3 * mapped.index(name)
            source = tm.columns[name].described + (" (vocabulary)" if name == tm.status_column else "")
            columns.append(ColumnProfile(name, source, stats[i], stats[i + 1], stats[i + 2]))
        elif name == tm.key:
            columns.append(ColumnProfile(name, "(absent: derived, md5 of the mapped columns)"))
        elif name == STATUS_COLUMN.get(tm.name):
            columns.append(ColumnProfile(name, f"(absent: '{DEFAULT_STATUS}')"))
        else:
            columns.append(ColumnProfile(name, "(absent: null)"))
    referenced = {c.lower() for c in tm.referenced()}
    unused = [c for c in loaded.source_columns if c.lower() not in referenced]
    day_rows = loaded.partition_rows
    existing = set(warehouse.partitions(tm.name))
    return Profile(tm.name, loaded.described_source, loaded.rows, day_rows, columns, unused,
                   sorted(d for d in day_rows if d in existing))


def format_profile(profile: Profile) -> list[str]:
    """The profile as text lines."""
    lines = [f"{profile.table}: {profile.rows:,} rows from {profile.source}"]
    lines.append("  " + day_summary(profile.day_rows))
    width = max(len(c.name) for c in profile.columns)
    source_width = min(_WIDTH, max(len(c.source) for c in profile.columns))
    lines.append(f"  {'column':<{width}}  {'source':<{source_width}}  {'nulls':>9}  {'min':<{_WIDTH}}  max")
    for c in profile.columns:
        if c.nulls is None:
            lines.append(f"  {c.name:<{width}}  {c.source}")
        else:
            lines.append(f"  {c.name:<{width}}  {_cut(c.source):<{source_width}}  {c.nulls:>9,}  "
                         f"{_cut(c.low):<{_WIDTH}}  {_cut(c.high)}")
    lines.append("  source columns not used: " + (", ".join(profile.unused) if profile.unused else "none"))
    replaced = (f"; {len(profile.replaced)} exist and would be replaced ({_span(profile.replaced)})"
                if profile.replaced else "; none exists yet")
    lines.append(f"  would write {len(profile.day_rows)} partition{'s' * (len(profile.day_rows) != 1)}{replaced}")
    return lines


def day_summary(day_rows: dict[str, int]) -> str:
    """Rows per day, compact: span, first and last day, min/median/max, days without rows inside the span."""
    day_rows = {d: n for d, n in day_rows.items() if n}  # the empty days inside the span are the holes
    if not day_rows:
        return "no rows"
    days = sorted(day_rows)
    if len(days) == 1:
        return f"1 day: {days[0]} ({day_rows[days[0]]:,} rows)"
    counts = [day_rows[d] for d in days]
    low, high = min(days, key=day_rows.__getitem__), max(days, key=day_rows.__getitem__)
    first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
    holes = (last - first).days + 1 - len(days)
    text = (f"{len(days)} days {days[0]} .. {days[-1]}; first {day_rows[days[0]]:,} rows, last "
            f"{day_rows[days[-1]]:,}; per day min {day_rows[low]:,} ({low}), median "
            f"{statistics.median(counts):,.0f}, max {day_rows[high]:,} ({high})")
    empty = "an empty partition" if holes == 1 else "empty partitions"
    return text + (f"; {holes} day{'s' * (holes > 1)} without rows inside the span ({empty})" if holes else "")


def _span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"


def _cut(value: str | None) -> str:
    text = "" if value is None else value
    return text if len(text) <= _WIDTH else text[:_WIDTH - 3] + "..."
