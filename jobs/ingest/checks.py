"""Bad-input checks on a loaded table, run before anything is written; the first problem stops the ingest.

Each error names the table, the file (or ``query``), the column, the row count and an example value:

- values that do not convert to the contract type (timestamps, numbers), and rows without the time that
  picks their day;
- status values outside the mapping's vocabulary (each with its count);
- amounts that look like cents while the mapping says units (or fractional cents while it says cents);
- a key in two files;
- a day with far fewer rows than the day before (a partial export, a lost file).

The cents heuristic, per file and over the whole source (``GROUPING SETS``), on the non-zero amounts of
each money column: at least ``CENTS_MIN_VALUES`` of them, at least ``CENTS_WHOLE_SHARE`` whole numbers
and a median (of absolute values, approximate) of at least ``CENTS_MEDIAN``. Prices in units nearly always
have some cents (9.99, 24.50); totals in cents are whole and large. A shop whose prices really are whole units (yen, or
whole-euro prices) sets ``check_cents = false``. With ``amount_unit = "cents"``, more than
``1 - CENTS_WHOLE_SHARE`` of the source values with a fraction are an error too.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from jobs.ingest.errors import IngestError
from jobs.ingest.load import Loaded
from jobs.ingest.mapping import quote

CENTS_MIN_VALUES = 20
CENTS_WHOLE_SHARE = 0.99
CENTS_MEDIAN = 100
_EXAMPLES = 5  # status values listed in an error


def run_checks(con: duckdb.DuckDBPyConnection, loaded: Loaded, previous: tuple[str, int] | None,
               max_shrink: float, min_rows: int) -> None:
    """Every check, in order; raises IngestError at the first problem. ``previous``: the stored partition
    before the ingested days (ds, rows)."""
    check_values(con, loaded)
    check_status(con, loaded)
    check_cents(con, loaded)
    check_duplicate_keys(con, loaded)
    check_shrink(con, loaded, previous, max_shrink, min_rows)


def plural_rows(rows: int) -> str:
    """'1 row', '2,000 rows'."""
    return f"{rows:,} row{'s' * (rows != 1)}"


def _where(loaded: Loaded, file_index: int, others: int, other_rows: int) -> str:
    more = f" (and {plural_rows(other_rows)} in {others} other file{'s' * (others > 1)})" if others else ""
    return f"{loaded.labels[file_index]}{more}"


def check_values(con: duckdb.DuckDBPyConnection, loaded: Loaded) -> None:
    """Source values that do not convert to the contract type; rows without the time that picks their day."""
    tm = loaded.mapping
    columns = [c for c in loaded.checked if c != tm.status_column]
    day = tm.day_column
    measures = [f"count({quote('_bad_' + c)}), min({quote('_bad_' + c)})" for c in columns]
    if day:  # required, so mapped; a timestamp, so checked: empty = null and not unparseable
        measures.append(f"count(*) FILTER (WHERE {quote(day)} IS NULL AND {quote('_bad_' + day)} IS NULL), NULL")
    if not measures:
        return
    per_file = con.execute(f"SELECT _file, {', '.join(measures)} FROM {loaded.table} GROUP BY _file "
                           "ORDER BY _file").fetchall()
    for i, column in enumerate([*columns, *([day] if day else [])]):
        hits = [(row[0], row[1 + 2 * i], row[2 + 2 * i]) for row in per_file if row[1 + 2 * i]]
        if not hits:
            continue
        file_index, rows, example = hits[0]
        where = _where(loaded, file_index, len(hits) - 1, sum(h[1] for h in hits[1:]))
        source = tm.columns[column].described
        if i == len(columns):  # the day column is empty
            raise IngestError(f"{loaded.name}: {column} is empty in {plural_rows(rows)} of {where} (source: "
                              f"{source}): a row without it belongs to no day",
                              hint=f"fill {column} in the source, or leave those rows out of the export (or query)")
        kind = dict(tm.table.columns)[column]
        formats = tm.timestamp_formats if kind == "timestamp" else ()
        spec = f", timestamp_format {list(formats)}" if formats else ""
        raise IngestError(
            f"{loaded.name}: {column} is not a valid {kind} in {plural_rows(rows)} of {where} "
            f"(source: {source}{spec}), e.g. {example!r}",
            hint=_HINTS.get(kind, "fix the values in the source, or convert them with { sql = ... }"))


_HINTS = {"timestamp": "set timestamp_format (strptime codes, e.g. '%d/%m/%Y %H:%M') to the source's format, "
          "or fix the values; without it timestamps must be ISO 8601 (2026-03-01 14:30:00[+01:00])"}


def check_status(con: duckdb.DuckDBPyConnection, loaded: Loaded) -> None:
    """Status values outside the mapping's vocabulary, each with its count."""
    tm = loaded.mapping
    column = tm.status_column
    if column is None:
        return
    bad = quote("_bad_" + column)
    found = con.execute(f"SELECT {bad}, count(*), min(_file) FROM {loaded.table} WHERE {bad} IS NOT NULL "
                        "GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    if not found:
        return
    total = sum(n for _, n, _ in found)
    values = ", ".join(f"{value!r} ({plural_rows(n)})" for value, n, _ in found[:_EXAMPLES])
    values += f" and {len(found) - _EXAMPLES} more" if len(found) > _EXAMPLES else ""
    files = sorted({loaded.labels[f] for _, _, f in found})
    raise IngestError(
        f"{loaded.name}: {column} is outside [{tm.section}.status] in {plural_rows(total)} (source: "
        f"{tm.columns[column].described}): {values}; first seen in {', '.join(files[:3])}",
        hint=f"map each value in [{tm.section}.status] to completed, cancelled or refunded")


def check_cents(con: duckdb.DuckDBPyConnection, loaded: Loaded) -> None:
    """Amounts that look like cents under amount_unit = "units" (fractional cents under "cents")."""
    tm = loaded.mapping
    if not tm.check_cents:
        return
    cents = tm.amount_unit == "cents"
    for column in tm.money_columns:
        # Under "cents" the stored value is source / 100: look at the source value again.
        v = f"(abs({quote(column)}){' * 100' if cents else ''})"
        whole_value = f"abs({v} - round({v})) < 1e-6"
        values = f"FROM {loaded.table} WHERE {quote(column)} IS NOT NULL AND {quote(column)} <> 0"
        shares = con.execute(f"SELECT _file, count(*), avg(CASE WHEN {whole_value} THEN 1.0 ELSE 0.0 END) {values} "
                             "GROUP BY GROUPING SETS ((_file), ()) ORDER BY _file NULLS LAST").fetchall()
        # Suspects by their share of whole values; the median and an example only for them (rarely any).
        for file_index, n, whole in shares:
            if n < CENTS_MIN_VALUES or (whole < CENTS_WHOLE_SHARE) != cents:
                continue
            # The example: a value that shows the problem (a large whole one; one with a fraction).
            example = f"NOT ({whole_value})" if cents else f"{whole_value} AND {v} >= {CENTS_MEDIAN}"
            group = "" if file_index is None else f" AND _file = {file_index}"
            median, sample = con.execute(f"SELECT approx_quantile({v}, 0.5), min({v}) FILTER (WHERE {example}) "
                                         f"{values}{group}").fetchone()
            where = loaded.labels[file_index] if file_index is not None else f"all {len(loaded.labels)} files"
            source = tm.columns[column].described
            if not cents and median >= CENTS_MEDIAN:
                raise IngestError(
                    f"{loaded.name}: {column} (source: {source}) looks like cents in {where}: {whole:.1%} of "
                    f"{n:,} non-zero values are whole numbers and their median is about {median:,.0f} "
                    f"(e.g. {sample:g}), but amount_unit = \"units\"",
                    hint=f"set amount_unit = \"cents\" in [{tm.section}]; if prices really are whole units, "
                    "set check_cents = false")
            if cents:
                raise IngestError(
                    f"{loaded.name}: {column} (source: {source}) has fractions of a cent in {where}: "
                    f"{1 - whole:.1%} of {n:,} non-zero values are not whole (e.g. {sample:g}), but "
                    "amount_unit = \"cents\"",
                    hint=f"the source is probably in units: set amount_unit = \"units\" in [{tm.section}]")


def check_duplicate_keys(con: duckdb.DuckDBPyConnection, loaded: Loaded) -> None:
    """A key in two files (overlapping exports). Duplicates inside one file are raw dirt the feature
    stage's cleaning removes; across files they mean the same data was exported twice."""
    if len(loaded.labels) < 2:
        return
    key = quote(loaded.mapping.key)
    found = con.execute(
        f"SELECT count(*) OVER (), k, f1, f2 FROM (SELECT {key} AS k, min(_file) AS f1, max(_file) AS f2 "
        f"FROM {loaded.table} WHERE {key} IS NOT NULL GROUP BY {key} HAVING min(_file) <> max(_file)) "
        "ORDER BY f1, f2, k LIMIT 1").fetchone()
    if found:
        keys, example, first, second = found
        tm = loaded.mapping
        source = "derived from the row" if tm.derived_key else f"source: {tm.columns[tm.key].described}"
        raise IngestError(
            f"{loaded.name}: {keys:,} {tm.key} values appear in more than one file ({source}), e.g. {example!r} in "
            f"{loaded.labels[first]} and {loaded.labels[second]}",
            hint="the files overlap: make the globs match each row once (remove the older export)")


def shrink_violation(day_rows: dict[str, int], previous: tuple[str, int] | None, max_shrink: float,
                     min_rows: int) -> tuple[str, int, str, int] | None:
    """The first day (ds, rows, previous ds, previous rows) with more than ``max_shrink`` fewer rows than the
    day before, or None. Every calendar day of the range counts (a day without rows has 0); ``previous``:
    the stored partition before the range. Days after fewer than ``min_rows`` rows are not judged."""
    days = sorted(day_rows)
    sequence = [previous] if previous else []
    if days:
        first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
        calendar = [(first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]
        sequence += [(d, day_rows.get(d, 0)) for d in calendar]
    for (before, before_rows), (day, rows) in zip(sequence, sequence[1:]):
        if before_rows >= min_rows and rows < before_rows * (1 - max_shrink):
            return day, rows, before, before_rows
    return None


def check_shrink(con: duckdb.DuckDBPyConnection, loaded: Loaded, previous: tuple[str, int] | None,
                 max_shrink: float, min_rows: int) -> None:
    """A day (or a users snapshot) with more than max_shrink fewer rows than the day (snapshot) before."""
    day_rows = loaded.partition_rows
    found = shrink_violation(day_rows, previous, max_shrink, min_rows)
    if not found:
        return
    day, rows, before, before_rows = found
    stored = " (stored)" if previous and before == previous[0] else ""
    if loaded.snapshot:
        where = ", ".join(loaded.labels[:3])
    else:
        # The files holding that day's rows (or the day before's, when it has none): where to look.
        look = day if rows else before
        top = con.execute(f"SELECT _file FROM {loaded.table} WHERE ds = CAST(? AS DATE) GROUP BY _file "
                          "ORDER BY count(*) DESC LIMIT 3", [look]).fetchall() if look in day_rows else []
        where = ", ".join(loaded.labels[f] for (f,) in top) or ", ".join(loaded.labels[:3])
    what = "the snapshot" if loaded.snapshot else f"ds={day}"
    raise IngestError(
        f"{loaded.name}: {what} has {plural_rows(rows)}, {1 - rows / before_rows:.0%} fewer than the "
        f"{before_rows:,} of {before}{stored}; more than the allowed {max_shrink:.0%} (files: {where})",
        hint="a partial export or a missing file? Complete the input; if the drop is real, rerun with "
        "--max-shrink 1 (or raise SEGMENTS_INGEST_MAX_SHRINK)")
