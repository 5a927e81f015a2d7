"""Publish the day's segments to the BI serving database, in one transaction.

Tables in schema ``segments`` of the BI database:
- ``user_segments``: the current label of every user (one row per user): replaced as a whole when
  ds is the newest published date. A backfill of an older date leaves it alone.
- ``segment_profiles``: one row per (ds, segment); the ds rows are replaced, other dates are kept,
  so BI charts of segment sizes over time work.
- ``publish_log``: one row per published ds.

Readers see either the previous complete version or the new one: everything happens in one
transaction (DuckDB's, or PostgreSQL's with MVCC). No Spark: the data is one row per user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from core import settings as settings_mod
from core import tables, warehouse
from core.errors import PlatformError

log = logging.getLogger(__name__)

SCHEMA = "segments"
# Published columns; their types come from the catalog declarations.
USER_SEGMENT_COLUMNS = ["user_id", "segment_id", "segment_name", "confidence", "model_name", "model_version",
                        "lifecycle", "days_since_last_active"]
# Columns added after the first release: a BI database created before gets them (ALTER ... IF NOT EXISTS).
_ADDED_COLUMNS = {"user_segments": ["lifecycle", "days_since_last_active"],
                  "segment_profiles": ["avg_days_since_last_active"]}
PROFILE_COLUMNS = tables.table("segments.segment_profiles").column_names

_SQL_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "double": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
}


class BiDatabaseMissing(PlatformError):
    hint = "publish a date first: segments publish --ds YYYY-MM-DD (or make demo)"


@dataclass
class PublishSummary:
    ds: str
    target: str
    users: int
    segments: int
    current_replaced: bool


def _ddl(table_name: str, columns: list[str]) -> str:
    types = dict(tables.table(table_name).columns)
    return ", ".join(f"{c} {_SQL_TYPES[types[c]]}" for c in columns) + ", ds VARCHAR NOT NULL"


def _load(ds: str) -> tuple[pa.Table, pa.Table]:
    labels = warehouse.read_arrow("segments.user_segments", ds, USER_SEGMENT_COLUMNS + ["ds"])
    profiles = warehouse.read_arrow("segments.segment_profiles", ds, PROFILE_COLUMNS + ["ds"])
    return labels, profiles


def publish(ds: str) -> PublishSummary:
    """Publish ds to the configured BI database (DuckDB file by default, PostgreSQL by URL)."""
    s = settings_mod.load()
    labels, profiles = _load(ds)
    if labels.num_rows == 0:
        raise ValueError(f"segments.user_segments ds={ds} is empty: nothing to publish")
    if s.bi_is_postgres:
        replaced = _publish_postgres(s.bi_url, ds, labels, profiles)
        target = "postgresql://" + s.bi_url.split("@")[-1]  # never echo credentials
    else:
        replaced = _publish_duckdb(Path(s.bi_url), ds, labels, profiles)
        target = s.bi_url
    return PublishSummary(ds, target, labels.num_rows, profiles.num_rows, replaced)


_CREATE = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.user_segments "
    f"({_ddl('segments.user_segments', USER_SEGMENT_COLUMNS)}, PRIMARY KEY (user_id))",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.segment_profiles "
    f"({_ddl('segments.segment_profiles', PROFILE_COLUMNS)}, PRIMARY KEY (ds, segment_id))",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.publish_log (ds VARCHAR PRIMARY KEY, users BIGINT, segments BIGINT)",
    # Inserts go by column name (DuckDB: BY NAME; PostgreSQL: COPY's column list): added columns come last.
    *[f"ALTER TABLE {SCHEMA}.{name} ADD COLUMN IF NOT EXISTS {column} "
      f"{_SQL_TYPES[dict(tables.table(f'segments.{name}').columns)[column]]}"
      for name, columns in _ADDED_COLUMNS.items() for column in columns],
]


def _publish_duckdb(path: Path, ds: str, labels: pa.Table, profiles: pa.Table) -> bool:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for stmt in _CREATE:
            con.execute(stmt)
        newest = con.execute(f"SELECT max(ds) FROM {SCHEMA}.user_segments").fetchone()[0]
        replace_current = newest is None or ds >= newest
        con.register("new_labels", labels)
        con.register("new_profiles", profiles)
        if replace_current:
            con.execute(f"DELETE FROM {SCHEMA}.user_segments")
            con.execute(f"INSERT INTO {SCHEMA}.user_segments BY NAME SELECT * FROM new_labels")
        con.execute(f"DELETE FROM {SCHEMA}.segment_profiles WHERE ds = ?", [ds])
        con.execute(f"INSERT INTO {SCHEMA}.segment_profiles BY NAME SELECT * FROM new_profiles")
        con.execute(f"DELETE FROM {SCHEMA}.publish_log WHERE ds = ?", [ds])
        con.execute(f"INSERT INTO {SCHEMA}.publish_log VALUES (?, ?, ?)", [ds, labels.num_rows, profiles.num_rows])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return replace_current


def _publish_postgres(url: str, ds: str, labels: pa.Table, profiles: pa.Table) -> bool:
    import psycopg

    with psycopg.connect(url) as con:  # one transaction: committed on success, rolled back on error
        with con.cursor() as cur:
            for stmt in _CREATE:
                cur.execute(stmt)
            # Serialise concurrent publishers; readers are never blocked (MVCC).
            cur.execute(f"LOCK TABLE {SCHEMA}.user_segments IN EXCLUSIVE MODE")
            cur.execute(f"SELECT max(ds) FROM {SCHEMA}.user_segments")
            newest = cur.fetchone()[0]
            replace_current = newest is None or ds >= newest
            if replace_current:
                cur.execute(f"DELETE FROM {SCHEMA}.user_segments")
                _copy(cur, f"{SCHEMA}.user_segments", labels)
            cur.execute(f"DELETE FROM {SCHEMA}.segment_profiles WHERE ds = %s", [ds])
            _copy(cur, f"{SCHEMA}.segment_profiles", profiles)
            cur.execute(f"DELETE FROM {SCHEMA}.publish_log WHERE ds = %s", [ds])
            cur.execute(f"INSERT INTO {SCHEMA}.publish_log VALUES (%s, %s, %s)",
                        [ds, labels.num_rows, profiles.num_rows])
    return replace_current


def _copy(cur, target: str, data: pa.Table) -> None:
    columns = ", ".join(data.column_names)
    with cur.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
        for row in zip(*(col.to_pylist() for col in data.columns)):
            copy.write_row(row)


def query(sql: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only query against the BI database (what a BI tool sees)."""
    s = settings_mod.load()
    if s.bi_is_postgres:
        import psycopg

        with psycopg.connect(s.bi_url) as con, con.cursor() as cur:
            cur.execute(sql)
            return [d.name for d in cur.description], cur.fetchall()
    import duckdb

    if not Path(s.bi_url).exists():
        raise BiDatabaseMissing(f"the BI database {s.bi_url} does not exist yet")
    con = duckdb.connect(s.bi_url, read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()
