"""The mapping file: parse and validate it (TOML, stdlib ``tomllib``); the format is in docs/ingest.md.

One file describes one or more raw tables, one section each (``[events]``, ``[orders]``, ``[users]``).
Everything is checked here, before any data is read: unknown keys, unknown contract columns, required
columns not mapped, contract columns neither mapped nor declared absent, time zones, formats, units and
the status vocabulary. SQL expressions are parsed (not run) to know which source columns they read.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.tables import ORDER_STATUSES, Table, table
from jobs.ingest.errors import IngestError

SECTIONS = {"events": "raw.events", "orders": "raw.orders", "users": "raw.users"}
SOURCE_KINDS = ("csv", "parquet", "postgres")
AMOUNT_UNITS = ("units", "cents")
EPOCH_FORMATS = {"epoch": 1, "epoch_ms": 1000}  # timestamp_format for numbers: seconds or milliseconds

# What the contract does not say: the timestamp that picks a row's partition (raw.users is a snapshot, one
# partition per ingest), the money columns that amount_unit converts, and the status column.
DAY_COLUMN = {"raw.events": "event_ts", "raw.orders": "order_ts"}
MONEY_COLUMNS = {"raw.events": ("price",), "raw.orders": ("amount", "discount_amount")}
STATUS_COLUMN = {"raw.orders": "status"}
DEFAULT_STATUS = "completed"  # the status of every order when the source has none

_TABLE_KEYS = {
    "source": "csv | parquet | postgres",
    "files": "glob(s) relative to the mapping file (csv, parquet)",
    "delimiter": "the CSV delimiter (csv; default: detected)",
    "query": "the SQL query (postgres)",
    "dsn_env": "the environment variable holding the connection string (postgres)",
    "timestamp_format": "strptime format(s) of text timestamps, or epoch / epoch_ms",
    "timezone": "time zone of timestamps without an offset (default UTC)",
    "amount_unit": "units | cents",
    "check_cents": "false: whole-number amounts really are units",
    "absent": "contract columns the source does not have",
    "columns": "contract column = source column or { sql = ... }",
    "status": "source status value = completed | cancelled | refunded",
    "group_by": "source columns of one contract row when the source has several rows per row (order lines)",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    """How one contract column is read: a source column, or a DuckDB SQL expression over source columns."""

    name: str  # the contract column
    source: str | None  # a source column name
    sql: str | None  # or an expression
    references: tuple[str, ...]  # the source columns it reads

    @property
    def expression(self) -> str:
        """The DuckDB SQL that reads it from a source row."""
        return quote(self.source) if self.source is not None else f"({self.sql})"

    @property
    def described(self) -> str:
        return self.source if self.source is not None else f"sql: {self.sql}"


@dataclass(frozen=True)
class Source:
    kind: str  # csv | parquet | postgres
    base_dir: Path  # the mapping file's folder: globs are relative to it
    files: tuple[str, ...] = ()
    delimiter: str | None = None
    query: str | None = None
    dsn_env: str | None = None


@dataclass(frozen=True)
class TableMapping:
    """One section of the mapping file, validated."""

    section: str  # "orders"
    table: Table
    source: Source
    columns: dict[str, Column]  # contract column -> how it is read (mapped columns only)
    absent: tuple[str, ...]
    timestamp_formats: tuple[str, ...]
    timezone: str
    amount_unit: str
    check_cents: bool
    status_values: dict[str, str]  # source value -> contract status (the contract's own values included)
    group_by: tuple[str, ...] = ()  # source columns: one contract row per group (columns are aggregates)

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key(self) -> str:
        return self.table.key[0]

    @property
    def derived_key(self) -> bool:
        """The key column is absent: ingest derives it from the row (``load``)."""
        return self.key in self.absent

    @property
    def day_column(self) -> str | None:
        return DAY_COLUMN.get(self.name)

    @property
    def money_columns(self) -> tuple[str, ...]:
        return tuple(c for c in MONEY_COLUMNS.get(self.name, ()) if c in self.columns)

    @property
    def status_column(self) -> str | None:
        column = STATUS_COLUMN.get(self.name)
        return column if column in self.columns else None

    def referenced(self) -> list[str]:
        """Every source column the mapping reads, in mapping order (then the group_by columns)."""
        return list(dict.fromkeys([*(ref for c in self.columns.values() for ref in c.references),
                                   *self.group_by]))


@dataclass(frozen=True)
class Mapping:
    path: Path
    tables: dict[str, TableMapping]  # raw table name -> mapping, in contract order (events, orders, users)


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted (source columns may hold spaces, capitals, keywords)."""
    return '"' + identifier.replace('"', '""') + '"'


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file."""
    path = Path(path).resolve()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(f"mapping file {path} does not exist", hint="pass the path of your TOML mapping "
                          "file (docs/ingest.md has a full example)") from None
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"{path.name} is not valid TOML: {exc}") from None
    return parse_mapping(data, path)


def parse_mapping(data: dict[str, Any], path: Path) -> Mapping:
    """Validate the parsed TOML of a mapping file (``path``: where it lives; globs are relative to it)."""
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise IngestError(f"{path.name}: unknown section(s) {_names(unknown)}; a mapping has one section per raw "
                          f"table: {', '.join(f'[{s}]' for s in SECTIONS)}")
    if not data:
        raise IngestError(f"{path.name} maps no table: add a section {', '.join(f'[{s}]' for s in SECTIONS)}")
    tables = {}
    for section in SECTIONS:  # contract order, whatever the file's order
        if section in data:
            spec = data[section]
            if not isinstance(spec, dict):
                raise IngestError(f"{path.name}: {section} must be a section [{section}], not a value")
            tables[SECTIONS[section]] = _table_mapping(section, spec, path)
    return Mapping(path, tables)


def _table_mapping(section: str, spec: dict[str, Any], path: Path) -> TableMapping:
    t = table(SECTIONS[section])
    where = f"{path.name} [{section}]"
    unknown = [k for k in spec if k not in _TABLE_KEYS]
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _TABLE_KEYS.items())
        raise IngestError(f"{where}: unknown key(s) {_names(unknown)}", hint=f"the keys of a table section: {known}")
    source = _source(spec, where, path.parent)
    columns = _columns(spec.get("columns", {}), t, where, section)
    absent = _absent(spec.get("absent", []), t, columns, where, section)
    formats = _timestamp_formats(spec.get("timestamp_format"), where)
    timezone = _text(spec, "timezone", where, "UTC")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise IngestError(f"{where}: unknown time zone {timezone!r}",
                          hint="use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'") from None
    unit = _text(spec, "amount_unit", where, "units")
    if unit not in AMOUNT_UNITS:
        raise IngestError(f"{where}: amount_unit must be {' or '.join(AMOUNT_UNITS)}, got {unit!r}")
    if ("amount_unit" in spec or "check_cents" in spec) and t.name not in MONEY_COLUMNS:
        raise IngestError(f"{where}: {t.name} has no money column; remove amount_unit / check_cents")
    check_cents = spec.get("check_cents", True)
    if not isinstance(check_cents, bool):
        raise IngestError(f"{where}: check_cents must be true or false, got {check_cents!r}")
    status = _status_values(spec.get("status"), t, absent, where)
    group_by = spec.get("group_by", [])
    group_by = [group_by] if isinstance(group_by, str) else group_by
    if not isinstance(group_by, list) or not all(isinstance(g, str) and g for g in group_by):
        raise IngestError(f"{where}: group_by must be a source column or a list of them, got {group_by!r}")
    return TableMapping(section, t, source, columns, absent, formats, timezone, unit, check_cents, status,
                        tuple(group_by))


def _source(spec: dict[str, Any], where: str, base_dir: Path) -> Source:
    kind = _text(spec, "source", where)
    if kind not in SOURCE_KINDS:
        raise IngestError(f"{where}: source must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    wrong = [k for k in (("files", "delimiter") if kind == "postgres" else ("query", "dsn_env")) if k in spec]
    if kind == "parquet" and "delimiter" in spec:
        wrong.append("delimiter")
    if wrong:
        raise IngestError(f"{where}: {_names(wrong)} do(es) not apply to source = {kind!r}")
    if kind == "postgres":
        dsn_env = _text(spec, "dsn_env", where)
        if not _ENV_NAME.match(dsn_env):
            # A connection string here would put a credential in the file: refuse it.
            raise IngestError(f"{where}: dsn_env must name an environment variable (e.g. SHOP_DATABASE_URL), "
                              f"not hold the connection string", hint="export SHOP_DATABASE_URL='postgresql://...' "
                              "and write dsn_env = \"SHOP_DATABASE_URL\"; keep credentials out of the file")
        return Source(kind, base_dir, query=_text(spec, "query", where), dsn_env=dsn_env)
    files = spec.get("files")
    globs = [files] if isinstance(files, str) else files
    if not globs or not isinstance(globs, list) or not all(isinstance(g, str) and g.strip() for g in globs):
        raise IngestError(f"{where}: files must be a glob or a list of globs (relative to the mapping file)")
    globs = [_expand(g, where) for g in globs]
    delimiter = _text(spec, "delimiter", where, "") or None
    return Source(kind, base_dir, files=tuple(globs), delimiter=delimiter)


def _columns(spec: Any, t: Table, where: str, section: str) -> dict[str, Column]:
    if not isinstance(spec, dict):
        raise IngestError(f"{where}: columns must be a section [{section}.columns]")
    unknown = [c for c in spec if c not in t.column_names]
    if unknown:
        raise IngestError(f"{where}: {_names(unknown)} is not a column of {t.name}",
                          hint=f"the columns of {t.name}: {', '.join(t.column_names)}")
    columns = {}
    for name in t.column_names:  # contract order
        if name not in spec:
            continue
        value = spec[name]
        if isinstance(value, str) and value.strip():
            columns[name] = Column(name, value, None, (value,))
        elif isinstance(value, dict) and set(value) == {"sql"} and isinstance(value["sql"], str):
            columns[name] = Column(name, None, value["sql"], expression_columns(value["sql"], f"{where} {name}"))
        else:
            raise IngestError(f"{where}: {name} must be a source column name or {{ sql = \"expression\" }}, "
                              f"got {value!r}")
    return columns


def _absent(spec: Any, t: Table, columns: dict[str, Column], where: str, section: str) -> tuple[str, ...]:
    if not isinstance(spec, list) or not all(isinstance(c, str) for c in spec):
        raise IngestError(f"{where}: absent must be a list of contract columns")
    unknown = [c for c in spec if c not in t.column_names]
    if unknown:
        raise IngestError(f"{where}: absent names {_names(unknown)}, not a column of {t.name}",
                          hint=f"the columns of {t.name}: {', '.join(t.column_names)}")
    both = [c for c in spec if c in columns]
    if both:
        raise IngestError(f"{where}: {_names(both)} is both mapped in columns and listed in absent")
    missing_required = [c for c in t.required if c not in columns]
    if missing_required:
        raise IngestError(f"{where}: required column(s) {_names(missing_required)} of {t.name} are not mapped",
                          hint=f"every source must provide {', '.join(t.required)}: map them in "
                          f"[{section}.columns] (a source column or {{ sql = ... }})")
    unaccounted = [c for c in t.column_names if c not in columns and c not in spec]
    if unaccounted:
        raise IngestError(f"{where}: contract column(s) {_names(unaccounted)} are neither mapped nor absent",
                          hint="map them in the columns section, or list them in absent = [...] (stored as null; "
                          "an absent key is derived from the row, an absent status is 'completed')")
    return tuple(c for c in t.column_names if c in spec)


def _timestamp_formats(value: Any, where: str) -> tuple[str, ...]:
    formats = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(formats, list) or not all(isinstance(f, str) and f for f in formats):
        raise IngestError(f"{where}: timestamp_format must be a strptime format, a list of them, "
                          f"or one of {', '.join(EPOCH_FORMATS)}")
    if any(f in EPOCH_FORMATS for f in formats) and len(formats) > 1:
        raise IngestError(f"{where}: {' / '.join(EPOCH_FORMATS)} cannot be combined with other formats")
    if len({"%z" in f or "%Z" in f for f in formats}) > 1:
        # strptime with a list of formats returns one type: all with an offset, or all without.
        raise IngestError(f"{where}: the timestamp formats must all have an offset (%z) or all lack one")
    return tuple(formats)


def _status_values(spec: Any, t: Table, absent: tuple[str, ...], where: str) -> dict[str, str]:
    if spec is None:
        return {s: s for s in ORDER_STATUSES} if t.name in STATUS_COLUMN else {}
    if t.name not in STATUS_COLUMN:
        raise IngestError(f"{where}: {t.name} has no status column; remove the status section")
    if STATUS_COLUMN[t.name] in absent:
        raise IngestError(f"{where}: status is absent (every order is '{DEFAULT_STATUS}'): remove the status "
                          "section, or map the status column")
    if not isinstance(spec, dict):
        raise IngestError(f"{where}: status must be a section of source value = contract status")
    wrong = {k: v for k, v in spec.items() if v not in ORDER_STATUSES}
    if wrong:
        raise IngestError(f"{where}: status values map to {', '.join(ORDER_STATUSES)} only; got "
                          + ", ".join(f"{k!r} = {v!r}" for k, v in wrong.items()))
    # A source that already speaks the contract's vocabulary needs no line for it.
    return {s: s for s in ORDER_STATUSES} | dict(spec)


def expression_columns(sql: str, where: str) -> tuple[str, ...]:
    """The source columns a SQL expression reads, from DuckDB's parse tree (the expression is not run).

    Also refuses anything but one expression (a second statement, a FROM clause).
    """
    import duckdb

    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [f"SELECT {sql}"]).fetchone()[0])
    statements = tree.get("statements", [])
    node = statements[0]["node"] if len(statements) == 1 else {}
    if tree.get("error") or len(node.get("select_list", [])) != 1 or node.get("from_table", {}).get("type") != "EMPTY":
        detail = f": {tree['error_message']}" if tree.get("error") else ""
        raise IngestError(f"{where}: {{ sql = {sql!r} }} is not one SQL expression{detail}",
                          hint="write one DuckDB expression over source columns, e.g. { sql = \"price * qty\" }")
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if item.get("class") == "COLUMN_REF":
                found.append(item["column_names"][0])  # a.b is column a's field b: the source has no table alias
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(node["select_list"])
    return tuple(dict.fromkeys(found))


def _expand(glob: str, where: str) -> str:
    """A glob with ``$VAR`` / ``${VAR}`` and ``~`` expanded: a data folder that differs per machine."""
    expanded = os.path.expanduser(os.path.expandvars(glob))
    unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise IngestError(f"{where}: files {glob!r} uses the environment variable {unset[0]}, which is not set",
                          hint=f"export {unset[0]}=... (the folder of the files) and run again")
    return expanded


def _text(spec: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = spec.get(key, default)
    if value is None:
        raise IngestError(f"{where}: {key} is missing ({_TABLE_KEYS[key]})")
    if not isinstance(value, str):
        raise IngestError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _names(items: list[str]) -> str:
    return ", ".join(repr(i) for i in items)
