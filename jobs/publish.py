"""Publish the day's segments to the BI serving database, in one transaction.

Tables in schema ``segments`` of the BI database:
- ``user_segments``: the current label of every user (one row per user): replaced as a whole when
  ds is the newest published date. A backfill of an older date leaves it alone.
- ``segment_profiles``: one row per (ds, segment); the ds rows are replaced, other dates are kept,
  so BI charts of segment sizes over time work.
- ``publish_log``: one row per published ds.

Readers see either the previous complete version or the new one, and are never blocked:
- PostgreSQL: one transaction (MVCC); publishers queue on a table lock.
- DuckDB: a file has one writer or many readers, never both, so the file readers open is never
  written. A publisher copies it to a new file beside it, commits the transaction there and renames
  the new file over the old one (``os.replace``, atomic): a reader that opened the old file keeps
  reading it; the next one opens the new file. Publishers queue on ``<file>.lock`` (flock).
No Spark: the data is one row per user. Reading is in ``jobs.bi_access``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from core import locks, tables, warehouse
from core import settings as settings_mod
from core.errors import PlatformError

# BiDatabaseMissing and query are re-exported: callers from before jobs.bi_access import them from here.
from jobs.bi_access import SCHEMA, BiDatabaseMissing, connect_postgres, postgres_target, query  # noqa: F401

log = logging.getLogger(__name__)

# How long a publisher waits for another one to finish before it gives up. A publish takes seconds;
# minutes of waiting mean a stuck publisher, which an operator should look at.
PUBLISH_WAIT_S = 300

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


class PublishBusy(PlatformError):
    hint = "another segments publish is running (or stuck: see the process named); retry when it is done"


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
        raise PlatformError(f"segments.user_segments ds={ds} is empty: nothing to publish",
                            hint=f"score the date first: segments score --ds {ds}")
    if s.bi_is_postgres:
        replaced = _publish_postgres(s.bi_url, ds, labels, profiles)
        target = postgres_target(s.bi_url)  # never echo credentials
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
    """Publish into a copy of the file, then swap the copy in: the file readers have open is never written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _publisher_lock(path):
        _remove_leftovers(path)
        new = path.with_name(f"{path.name}.publish-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            if path.exists():
                _copy_current(path, new)
            replaced = _apply_duckdb(new, ds, labels, profiles)
            _fsync(new)
            # The old WAL must not outlive its file: DuckDB would replay it onto the new file. Between the
            # two steps a new reader sees the old file without it, an older but complete version.
            _wal(path).unlink(missing_ok=True)
            os.replace(new, path)
            _fsync(path.parent)
        finally:
            _remove_leftovers(path)
    return replaced


def _copy_current(path: Path, new: Path) -> None:
    """Copy the published file, and the WAL a killed writer left beside it, to ``new``.

    Under a POSIX read lock, the kind DuckDB itself takes: it is refused while a read-write connection
    (a BI tool that ignored read-only) has the file open and could be changing it under the copy.
    """
    with open(path, "rb") as current:
        try:
            fcntl.lockf(current, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise PlatformError(f"cannot publish: another process has {path} open read-write",
                                hint="BI tools must open the file read-only (duckdb -readonly, "
                                "read_only=True); only segments publish writes it") from None
        with open(new, "wb") as copy:
            shutil.copyfileobj(current, copy)
        shutil.copymode(path, new)
        if _wal(path).exists():  # committed, not yet checkpointed writes of a killed writer: replayed on open
            shutil.copyfile(_wal(path), _wal(new))


def _apply_duckdb(path: Path, ds: str, labels: pa.Table, profiles: pa.Table) -> bool:
    import duckdb

    # On failure the copy is closed uncommitted and thrown away: the published file was never touched.
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
        con.execute("CHECKPOINT")  # everything into the file itself: a WAL beside it would not be renamed
    finally:
        con.close()
    if _wal(path).exists():
        raise PlatformError(f"DuckDB left {_wal(path)} after a checkpoint: the new version is not published")
    return replace_current


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_leftovers(path: Path) -> None:
    """Remove the copies (with their WAL and spill directory) dead publishers left; call under the lock."""
    for leftover in path.parent.glob(f"{path.name}.publish-*"):
        log.info("removing %s, left by an interrupted publish", leftover)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def _publisher_lock(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively, waiting at most PUBLISH_WAIT_S for another publisher.

    An flock (``core.locks``): the kernel releases it when its holder dies, so a killed publisher never
    blocks the next one; the holder describes itself in the file for the waiters.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = locks.acquire(lock_path, "segments publish", PUBLISH_WAIT_S,
                           waiting=lambda holder: log.info("waiting for another publish to %s: %s", path, holder))
    except locks.LockHeld as exc:
        raise PublishBusy(f"another publish to {path} has held {lock_path} for more than {PUBLISH_WAIT_S:g} s: "
                          f"{exc.holder}") from None
    try:
        yield
    finally:
        locks.release(fd)


def _publish_postgres(url: str, ds: str, labels: pa.Table, profiles: pa.Table) -> bool:
    import psycopg

    with connect_postgres(url) as con:  # one transaction: committed on success, rolled back on error
        with con.cursor() as cur:
            for stmt in _CREATE:
                cur.execute(stmt)
            # Serialise concurrent publishers, the waiting one for at most PUBLISH_WAIT_S; readers are
            # never blocked (MVCC).
            cur.execute(f"SET LOCAL lock_timeout = '{PUBLISH_WAIT_S}s'")
            try:
                cur.execute(f"LOCK TABLE {SCHEMA}.user_segments IN EXCLUSIVE MODE")
            except psycopg.errors.LockNotAvailable:
                raise PublishBusy(f"another publish to {postgres_target(url)} has held "
                                  f"{SCHEMA}.user_segments for more than {PUBLISH_WAIT_S:g} s") from None
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
