"""Read a table's source into DuckDB, converted to the contract: types, UTC, units, status, keys, day.

Each chunk of the source (files read together, or a batch of the query: ``source``) is inserted into one
DuckDB table ``loaded_<section>`` by one SQL statement in three steps:

1. the mapped expressions over the source row (``_raw_<column>``);
2. the conversion to the contract type (``TRY_CAST``, ``strptime``, time zone -> UTC, cents -> units, the
   status vocabulary); absent columns are null, an absent status is ``completed``;
3. the derived key (when the key column is absent), the partition day ``ds`` (UTC date of the event or
   order time) and, per converted column, ``_bad_<column>``: the source value when it was there but did
   not convert (``checks`` reports them). ``_file`` is the index of the row's unit (file, or query).

Timestamps: a value with an offset (``...+02:00``, ``Z``, ``%z``) is that instant; one without is a local
time in the mapping's ``timezone``; TIMESTAMP WITH TIME ZONE columns (Parquet, PostgreSQL timestamptz)
are instants already. Everything is stored as UTC.

Derived keys: ``md5`` of the JSON of the row's mapped contract columns after conversion (timestamps as
epoch microseconds), so the same row gives the same key whatever the file, its format or its time zone
spelling, and re-ingesting the same input gives the same keys. Rows identical in every mapped column get
the same key (the feature stage keeps one of them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field

import duckdb
from tqdm import tqdm

from core import settings as settings_mod
from jobs.ingest.errors import IngestError
from jobs.ingest.mapping import DEFAULT_STATUS, EPOCH_FORMATS, STATUS_COLUMN, TableMapping, quote
from jobs.ingest.source import first_line, open_source, sql_string

DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "long": "BIGINT", "double": "DOUBLE",
                "timestamp": "TIMESTAMPTZ"}
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


@dataclass
class Loaded:
    """A table's source, converted, in DuckDB."""

    mapping: TableMapping
    table: str  # the DuckDB table
    labels: list[str] = field(default_factory=list)  # unit labels, by _file
    source_columns: list[str] = field(default_factory=list)  # every unit's columns, first seen first
    checked: list[str] = field(default_factory=list)  # contract columns with a _bad_ column
    rows: int = 0
    day_rows: dict[str, int] = field(default_factory=dict)  # ds -> rows (dated tables)
    snapshot: str | None = None  # raw.users: the one ds its rows are written to (set by the runner)

    @property
    def name(self) -> str:
        return self.mapping.name

    @property
    def partition_rows(self) -> dict[str, int]:
        """ds -> rows of the partitions to write: one per day from the first to the last day of the input
        (a day without rows inside that span, a shop closed on Christmas, gets an empty partition: it is
        complete, not missing), or the snapshot's."""
        if self.snapshot:
            return {self.snapshot: self.rows}
        if not self.day_rows:
            return {}
        first, last = (dt.date.fromisoformat(d) for d in (min(self.day_rows), max(self.day_rows)))
        span = ((first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1))
        return {d: self.day_rows.get(d, 0) for d in span}

    @property
    def described_source(self) -> str:
        """'3 csv files', or 'query'."""
        kind, count = self.mapping.source.kind, len(self.labels)
        return "query" if kind == "postgres" else f"{count} {kind} file{'s' * (count != 1)}"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for one ingest: UTC, spilling to SEGMENTS_HOME/tmp when memory runs short."""
    con = duckdb.connect()
    try:  # time zones come from DuckDB's ICU extension: built into the wheel, nothing is downloaded
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SELECT timezone('Europe/Berlin', TIMESTAMP '2026-01-01 00:00')").fetchone()
    except duckdb.Error as exc:
        raise IngestError("this DuckDB cannot convert time zones (its ICU extension is missing): "
                          f"{first_line(exc)}",
                          hint="install the duckdb of locks/job.txt (make install): it has ICU built in") from None
    spill = settings_mod.load().home / "tmp" / "duckdb-ingest"
    con.execute(f"SET temp_directory = {sql_string(str(spill))}")
    return con


def load_table(con: duckdb.DuckDBPyConnection, tm: TableMapping, progress: bool = True) -> Loaded:
    """Read the mapping's source into ``loaded_<section>``, converted to the contract."""
    t = tm.table
    types = dict(t.columns)
    loaded = Loaded(tm, f"loaded_{tm.section}")
    loaded.checked = [c for c in tm.columns if types[c] != "string" or c == tm.status_column]
    columns = [f"{quote(c)} {DUCKDB_TYPES[types[c]]}" for c in t.column_names]
    columns += ["ds DATE", "_file INTEGER"] + [f"{quote('_bad_' + c)} VARCHAR" for c in loaded.checked]
    con.execute(f"CREATE OR REPLACE TABLE {loaded.table} ({', '.join(columns)})")
    with contextlib.ExitStack() as stack:
        reading = stack.enter_context(open_source(con, tm))
        loaded.labels = reading.labels
        for label, names in zip(reading.labels, reading.columns):  # every unit, before any row is read
            check_columns(tm, label, names)
            loaded.source_columns.extend(c for c in names if c not in loaded.source_columns)
        # delay: a bar only for inputs that take more than a second to read
        bar = stack.enter_context(tqdm(total=reading.total, desc=tm.name, unit=reading.progress_unit,
                                       unit_scale=True, disable=not progress, delay=1))
        converting: dict[str, str] = {}  # schema relation -> conversion SQL (CSV and queries: one for all)
        for chunk in reading.chunks():
            if chunk.schema_relation not in converting:
                converting[chunk.schema_relation] = unit_sql(tm, bind(con, tm, chunk.schema_relation))
            sql = converting[chunk.schema_relation].replace("{relation}", chunk.relation)
            _insert(con, tm, loaded.table, sql.replace("{unit}", chunk.unit_sql))
            bar.update(chunk.progress)
    loaded.rows = con.execute(f"SELECT count(*) FROM {loaded.table}").fetchone()[0]
    if tm.day_column:
        loaded.day_rows = dict(con.execute(f"SELECT CAST(ds AS VARCHAR), count(*) FROM {loaded.table} "
                                           "WHERE ds IS NOT NULL GROUP BY ds ORDER BY ds").fetchall())
    return loaded


def _insert(con: duckdb.DuckDBPyConnection, tm: TableMapping, table: str, sql: str) -> None:
    # Text timestamps without an offset are read in the session time zone: the mapping's, for this statement.
    con.execute(f"SET TimeZone = {sql_string(tm.timezone)}")
    try:
        con.execute(f"INSERT INTO {table} BY NAME {sql}")
    except duckdb.Error as exc:  # a malformed file: DuckDB's message names it and the line
        raise IngestError(f"{tm.name}: cannot read the source: {first_line(exc)}") from None
    finally:
        con.execute("SET TimeZone = 'UTC'")


def check_columns(tm: TableMapping, label: str, names: list[str]) -> None:
    """Every source column the mapping reads is in the unit (file or query)."""
    have = {c.lower() for c in names}  # DuckDB matches identifiers case-insensitively
    missing = [(ref, c.name) for c in tm.columns.values() for ref in c.references if ref.lower() not in have]
    missing += [(g, "group_by") for g in tm.group_by if g.lower() not in have]
    if missing:
        what = ", ".join(f"{ref!r} (mapped to {col})" for ref, col in missing)
        hint = "fix the column names in the mapping's columns section, or the file"
        if len(names) == 1 and tm.source.kind == "csv":  # a whole header line read as one name
            hint = ("the CSV delimiter was not recognised: set delimiter = \",\" (or \";\", \"\\t\", ...) in "
                    "the mapping")
        raise IngestError(f"{tm.name}: {label} has no column {what}; its columns: {', '.join(names)}", hint=hint)


def bind(con: duckdb.DuckDBPyConnection, tm: TableMapping, relation: str) -> dict[str, str]:
    """The DuckDB type of each mapped expression over a relation (binding only: no row is read)."""
    every = ", ".join(f"{c.expression} AS {quote(c.name)}" for c in tm.columns.values())
    grouped = group_by_sql(tm)
    try:
        return {row[0]: row[1] for row in
                con.execute(f"DESCRIBE SELECT {every} FROM {relation}{grouped}").fetchall()}
    except duckdb.Error:
        pass
    for column in tm.columns.values():  # which one fails, for the message
        try:
            con.execute(f"DESCRIBE SELECT {column.expression} AS x FROM {relation}{grouped}")
        except duckdb.Error as exc:
            hint = ("CSV and query columns are text in SQL expressions: cast them, e.g. "
                    "{ sql = \"price::DOUBLE * qty::INTEGER\" }")
            if grouped:
                hint = (f"with group_by, a mapped column is one of {', '.join(tm.group_by)} or an aggregate "
                        "over the group's rows, e.g. { sql = \"sum(price::DOUBLE)\" }, { sql = \"min(ts)\" }")
            raise IngestError(f"{tm.name}: the mapping of {column.name} ({column.described}) fails: "
                              f"{first_line(exc)}", hint=hint) from None
    raise IngestError(f"{tm.name}: the mapping does not bind")  # each column alone did


def unit_sql(tm: TableMapping, raw_types: dict[str, str]) -> str:
    """The SELECT converting source rows to the loaded table; ``{relation}``: where they are, ``{unit}``: the
    SQL of their unit index."""
    types = dict(tm.table.columns)
    raw = ", ".join(f"{c.expression} AS {quote('_raw_' + c.name)}" for c in tm.columns.values())
    converted, bad = [], []
    for name in tm.table.column_names:
        if name not in tm.columns:
            value = sql_string(DEFAULT_STATUS) if name == STATUS_COLUMN.get(tm.name) else "NULL"
            converted.append(f"CAST({value} AS {DUCKDB_TYPES[types[name]]}) AS {quote(name)}")
            continue
        r = quote("_raw_" + name)
        converted.append(f"{convert(tm, name, r, raw_types[name])} AS {quote(name)}")
        if types[name] != "string" or name == tm.status_column:
            present = f"({r} IS NOT NULL AND trim({r}) <> '')" if raw_types[name] == "VARCHAR" else f"{r} IS NOT NULL"
            # The rare, cheap test first: DuckDB evaluates the next conjunct only on the rows that pass.
            bad.append(f"CASE WHEN {quote(name)} IS NULL AND {present} THEN CAST({r} AS VARCHAR) END "
                       f"AS {quote('_bad_' + name)}")
    keep_raw = ", ".join(quote("_raw_" + c) for c in tm.columns)
    finished = [key_sql(tm) + f" AS {quote(tm.key)}" if tm.derived_key else quote(tm.key)]
    finished += [quote(c) for c in tm.table.column_names if c != tm.key]
    day = tm.day_column
    # The UTC date from the instant's epoch: 25x faster than a time zone conversion (ICU) of every row.
    finished.append(f"CAST(make_timestamp(epoch_us({quote(day)})) AS DATE) AS ds" if day else "NULL AS ds")
    finished += bad + ["_file"]
    grouped = f"{group_by_sql(tm)}, {{unit}}" if tm.group_by else ""
    return (f"SELECT {', '.join(finished)} FROM ("
            f"SELECT {', '.join(converted)}, {keep_raw}, _file FROM ("
            f"SELECT {raw}, {{unit}} AS _file FROM {{relation}}{grouped}))")


def group_by_sql(tm: TableMapping) -> str:
    """' GROUP BY <columns>' when the source has several rows per contract row (order lines), else ''. The
    groups are formed within a unit (file), so the lines of one order in two files become two rows with
    one key: the duplicate-key check stops that."""
    return f" GROUP BY {', '.join(quote(g) for g in tm.group_by)}" if tm.group_by else ""


def convert(tm: TableMapping, name: str, r: str, raw_type: str) -> str:
    """SQL converting the raw expression ``r`` (of DuckDB type ``raw_type``) to contract column ``name``;
    NULL where it does not convert."""
    kind = dict(tm.table.columns)[name]
    # strptime wants the exact text; casts to numbers skip surrounding spaces themselves.
    value = f"trim({r})" if raw_type == "VARCHAR" and kind == "timestamp" else r
    if name == tm.status_column:
        cases = " ".join(f"WHEN {sql_string(k)} THEN {sql_string(v)}" for k, v in tm.status_values.items())
        return f"CASE CAST({r} AS VARCHAR) {cases} END"
    if kind == "string":
        return f"CAST({r} AS VARCHAR)"
    if kind == "timestamp":
        return _timestamp(tm, name, value, raw_type)
    number = f"TRY_CAST({value} AS {DUCKDB_TYPES[kind]})"
    return f"({number} / 100)" if name in tm.money_columns and tm.amount_unit == "cents" else number


def _timestamp(tm: TableMapping, name: str, value: str, raw_type: str) -> str:
    zone = sql_string(tm.timezone)
    formats = tm.timestamp_formats
    epoch = formats[0] if formats and formats[0] in EPOCH_FORMATS else None
    if raw_type == "TIMESTAMP WITH TIME ZONE":
        return value
    if raw_type.startswith("TIMESTAMP") or raw_type == "DATE":  # naive: a local time of the mapping's zone
        return f"timezone({zone}, CAST({value} AS TIMESTAMP))"
    if raw_type.startswith(_NUMERIC) or epoch:
        if not epoch:
            raise IngestError(f"{tm.name}: {name} is mapped to a number column ({raw_type})",
                              hint=f"numbers are read as epoch times with timestamp_format = "
                              f"{' or '.join(repr(f) for f in EPOCH_FORMATS)} in [{tm.section}]")
        return f"to_timestamp(TRY_CAST({value} AS DOUBLE) / {EPOCH_FORMATS[epoch]})"
    if raw_type != "VARCHAR":
        raise IngestError(f"{tm.name}: {name} is mapped to a {raw_type} column, not a timestamp or text")
    if formats:
        parsed = f"try_strptime({value}, [{', '.join(sql_string(f) for f in formats)}])"
        return parsed if "%z" in formats[0] or "%Z" in formats[0] else f"timezone({zone}, {parsed})"
    # ISO 8601: an offset in the value wins, else the session time zone, set to the mapping's (``_insert``).
    return f"TRY_CAST({value} AS TIMESTAMPTZ)"


def key_sql(tm: TableMapping) -> str:
    """The derived key: md5 of the JSON of the mapped contract columns (timestamps as epoch microseconds)."""
    types = dict(tm.table.columns)
    fields = ", ".join(f"{quote(c)} := " + (f"epoch_us({quote(c)})" if types[c] == "timestamp" else quote(c))
                       for c in tm.table.column_names if c in tm.columns)
    return f"md5(to_json(struct_pack({fields})))"
