"""Where a table's rows come from: CSV or Parquet files (globs), or a PostgreSQL query, as DuckDB relations.

Errors name a *unit*: a file (its path relative to the mapping file), or ``query``. Every unit's columns
are known before any row is read (a CSV's header line, a Parquet footer, the query's description), so a
missing column stops the ingest at once.

Rows are read in chunks, each one DuckDB relation: consecutive files with the same columns together, up
to ``CHUNK_BYTES``, in one ``read_csv``/``read_parquet`` call (DuckDB reads the files of a call in
parallel; one call per file was 2x slower); a query in batches of ``BATCH_ROWS`` from a server-side
cursor, each batch an Arrow table registered in DuckDB while it is inserted (memory holds one batch of
source rows at a time).

CSV columns are read as text: type sniffing would turn "00123" into 123 and guess day/month orders;
``load`` converts them to the contract's types and reports what does not parse. The dialect (delimiter,
quote) is found once, on the first file, and imposed with each file's header on DuckDB's reader, strictly:
a malformed row is an error, never a skipped line. Query columns are text too (PostgreSQL's own text
output, ISO dates, time zone UTC): the same conversion applies. Parquet columns keep their types.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow as pa

from jobs.ingest.errors import IngestError
from jobs.ingest.mapping import TableMapping

BATCH_ROWS = 100_000  # rows per batch of a PostgreSQL query
CHUNK_BYTES = 256 * 2**20  # files read by one statement (progress is reported per chunk)
QUERY_LABEL = "query"


@dataclass
class Chunk:
    """Rows of one or more units as one DuckDB relation."""

    relation: str
    schema_relation: str  # the same columns, maybe no rows: binding the mapping reads no data
    unit_sql: str  # SQL giving each row's unit index (the position of its label)
    progress: int  # what it adds to the progress bar


@dataclass
class Reading:
    """A source being read: its units and their columns, and its rows chunk by chunk."""

    labels: list[str]  # units, by index
    columns: list[list[str]]  # each unit's columns
    total: int | None  # for the progress bar: bytes of the files; None for a query
    progress_unit: str
    chunks: Callable[[], Iterator[Chunk]]


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def resolve_files(tm: TableMapping) -> list[Path]:
    """The files of the mapping's globs (relative to the mapping file), sorted; every glob must match."""
    found: dict[Path, None] = {}
    for pattern in tm.source.files:
        # os.path.join keeps an absolute pattern as it is; recursive: "**" spans folders.
        matches = sorted(Path(p) for p in glob.glob(os.path.join(tm.source.base_dir, pattern), recursive=True)
                         if Path(p).is_file())
        if not matches:
            raise IngestError(f"{tm.name}: files = {pattern!r} matches no file (relative to {tm.source.base_dir})",
                              hint="check the glob; it is relative to the folder of the mapping file")
        found.update(dict.fromkeys(matches))
    return list(found)


def label_of(path: Path, base_dir: Path) -> str:
    """How errors name a file: relative to the mapping file when it is below it."""
    try:
        return str(path.relative_to(base_dir))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def open_source(con: duckdb.DuckDBPyConnection, tm: TableMapping) -> Iterator[Reading]:
    """Open the mapping's source (files, or the query) for reading."""
    if tm.source.kind == "postgres":
        with _query(con, tm) as reading:
            yield reading
    else:
        yield _files(con, tm)


def _files(con: duckdb.DuckDBPyConnection, tm: TableMapping) -> Reading:
    files = resolve_files(tm)
    labels = [label_of(f, tm.source.base_dir) for f in files]
    sizes = [f.stat().st_size for f in files]
    if tm.source.kind == "parquet":
        import pyarrow.parquet as pq

        columns = [_read(lambda f=f: pq.read_schema(f).names, tm, label) for f, label in zip(files, labels)]
        text_schema = None
    else:
        delimiter, quote = _dialect(con, tm, files[0], labels[0])
        columns = [_read(lambda f=f: _csv_header(f, delimiter, quote), tm, label) for f, label in zip(files, labels)]
        text_schema = _text_schema(con, tm, columns)

    def relation(paths: list[Path], names: list[str]) -> str:
        listed = ", ".join(sql_string(str(f)) for f in paths)
        if tm.source.kind == "parquet":
            return f"read_parquet([{listed}])"
        # No sniffing: DuckDB's sniffer may skip rows it finds irregular (a header guessed further down) and
        # turn them into silent losses. The dialect and the columns found here are imposed, strictly: a row
        # with more or fewer fields is an error naming the file and the line.
        typed = ", ".join(f"{sql_string(n)}: 'VARCHAR'" for n in names)
        return (f"read_csv([{listed}], auto_detect = false, header = true, delim = {sql_string(delimiter)}, "
                f"quote = {sql_string(quote)}, escape = {sql_string(quote)}, columns = {{{typed}}})")

    def chunks() -> Iterator[Chunk]:
        start = 0
        while start < len(files):
            # One statement reads consecutive files with the same columns, up to CHUNK_BYTES.
            end, size = start + 1, sizes[start]
            while end < len(files) and columns[end] == columns[start] and size + sizes[end] <= CHUNK_BYTES:
                size += sizes[end]
                end += 1
            read = relation(files[start:end], columns[start])
            yield Chunk(read, text_schema or read, f"(file_index + {start})", size)
            start = end

    return Reading(labels, columns, sum(sizes), "B", chunks)


def _dialect(con: duckdb.DuckDBPyConnection, tm: TableMapping, first: Path, label: str) -> tuple[str, str]:
    """The delimiter (the mapping's, or DuckDB's guess on the first file) and the quote character."""
    if tm.source.delimiter:
        return tm.source.delimiter, '"'
    found = _read(lambda: con.execute("SELECT Delimiter, Quote FROM sniff_csv(?)", [str(first)]).fetchone(), tm, label)
    return found[0], (found[1] if found[1] not in ("", "(empty)", None) else '"')


def _csv_header(path: Path, delimiter: str, quote: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: a BOM is not part of a name
        return next(csv.reader(handle, delimiter=delimiter, quotechar=quote), [])


def _text_schema(con: duckdb.DuckDBPyConnection, tm: TableMapping, columns: list[list[str]]) -> str:
    """An empty relation with every unit's columns as text: binding over it costs no CSV sniffing."""
    names = list(dict.fromkeys(c for unit in columns for c in unit))
    view = f"_schema_{tm.section}"
    con.register(view, pa.schema([pa.field(n, pa.string()) for n in names]).empty_table())
    return view


def _read(read: Callable, tm: TableMapping, label: str):
    try:
        return read()
    except (OSError, UnicodeDecodeError, duckdb.Error, pa.ArrowException) as exc:
        raise IngestError(f"{tm.name}: cannot read {label}: {first_line(exc)}") from None


@contextlib.contextmanager
def _query(con: duckdb.DuckDBPyConnection, tm: TableMapping) -> Iterator[Reading]:
    """The PostgreSQL query, streamed from a server-side cursor in a read-only transaction."""
    import psycopg
    from psycopg.types.string import TextLoader

    dsn = os.environ.get(tm.source.dsn_env or "", "").strip()
    if not dsn:
        raise IngestError(f"{tm.name}: the environment variable {tm.source.dsn_env} (dsn_env) is not set",
                          hint=f"export {tm.source.dsn_env}='postgresql://user@host:5432/shop' (a password: "
                          "PGPASSWORD or ~/.pgpass)")
    try:
        conn = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise IngestError(f"{tm.name}: cannot connect to PostgreSQL ({tm.source.dsn_env}): {first_line(exc)}") from None
    try:
        conn.read_only = True  # the query may only read
        conn.execute("SET TimeZone TO 'UTC'")  # timestamptz as text: UTC with an offset, ISO (below)
        conn.execute("SET DateStyle TO 'ISO'")
        cursor = conn.cursor(name=f"segments_ingest_{uuid.uuid4().hex[:8]}")
        try:
            cursor.execute(tm.source.query)
        except psycopg.Error as exc:
            raise IngestError(f"{tm.name}: the query failed: {first_line(exc)}") from None
        names = [c.name for c in cursor.description]
        for column in cursor.description:  # every value as PostgreSQL's text: converted like a CSV field
            cursor.adapters.register_loader(column.type_code, TextLoader)
        schema = pa.schema([pa.field(n, pa.string()) for n in names])
        empty = _text_schema(con, tm, [names])

        def chunks() -> Iterator[Chunk]:
            view = f"_batch_{tm.section}"
            while True:
                try:
                    rows = cursor.fetchmany(BATCH_ROWS)
                except psycopg.Error as exc:
                    raise IngestError(f"{tm.name}: the query failed: {first_line(exc)}") from None
                if not rows:
                    return
                con.register(view, pa.table([pa.array(c, pa.string()) for c in zip(*rows)], schema=schema))
                try:
                    yield Chunk(view, empty, "0", len(rows))
                finally:
                    con.unregister(view)

        yield Reading([QUERY_LABEL], [names], None, "rows", chunks)
    finally:
        conn.close()


def first_line(exc: Exception) -> str:
    """The gist of a DuckDB or psycopg error: its first line; for a CSV error also the line it quotes, what
    was expected, and the file (DuckDB adds a list of options and fixes that do not apply here)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    end = lines.index("Possible fixes:") if "Possible fixes:" in lines else 1
    gist = "; ".join(lines[:min(end, 3)])
    file = next((line[len("file = "):] for line in lines if line.startswith("file = ")), None)
    return gist + (f" (in {file})" if file else "")
