"""Publishing to and reading from both BI databases for real: the DuckDB file and the PostgreSQL server.

Readers are safe: a DuckDB publish works while readers hold the file open and they always see a complete
version; `segments sql` cannot write to either database; `segments bi grant-reader` makes a role that can
read schema segments and nothing else; an unreachable server is one error line, quickly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from app import cli
from core import settings, tables, warehouse
from core.errors import PlatformError
from jobs import bi_access, publish

pytestmark = pytest.mark.integration


def _write_day(ds: str, users: int, segment_of=lambda i: i % 2, version: str = "1") -> None:
    labels = pa.Table.from_pylist(
        [{"user_id": f"u{i}", "segment_id": segment_of(i), "segment_name": f"seg{segment_of(i)}",
          "confidence": 0.9, "probabilities": [0.9, 0.1], "model_name": "user_segmenter",
          "model_version": version} for i in range(users)],
        schema=tables.table("segments.user_segments").arrow_schema(),
    )
    warehouse.write_arrow("segments.user_segments", labels, ds)
    sizes = {}
    for i in range(users):
        sizes[segment_of(i)] = sizes.get(segment_of(i), 0) + 1
    profile_cols = tables.table("segments.segment_profiles").column_names
    profiles = [{c: 0.0 for c in profile_cols} | {"segment_id": s, "segment_name": f"seg{s}", "users": n,
                                                  "share": n / users, "model_version": version}
                for s, n in sizes.items()]
    warehouse.write_arrow("segments.segment_profiles",
                        pa.Table.from_pylist(profiles, schema=tables.table("segments.segment_profiles").arrow_schema()),
                        ds)


def _counts() -> dict[str, int]:
    out = {}
    for table in ("user_segments", "segment_profiles", "publish_log"):
        _, rows = bi_access.query(f"SELECT count(*) FROM segments.{table}")
        out[table] = rows[0][0]
    return out


@pytest.fixture(params=["duckdb", "postgres"])
def bi_target(request, platform_home, monkeypatch):
    if request.param == "postgres":
        monkeypatch.setenv("SEGMENTS_BI_URL", request.getfixturevalue("postgres_url"))
    return request.param


def test_publish_is_idempotent_and_keeps_history_of_profiles(bi_target):
    _write_day("2026-03-01", users=10)
    _write_day("2026-03-02", users=12)

    publish.publish("2026-03-01")
    publish.publish("2026-03-02")
    first = _counts()
    publish.publish("2026-03-02")  # rerun of the same date
    assert _counts() == first == {"user_segments": 12, "segment_profiles": 4, "publish_log": 2}

    # Backfilling an older date refreshes its profiles but never rolls current labels back.
    summary = publish.publish("2026-03-01")
    assert not summary.current_replaced
    _, rows = bi_access.query("SELECT DISTINCT ds FROM segments.user_segments")
    assert rows == [("2026-03-02",)]
    _, rows = bi_access.query("SELECT ds, sum(users) FROM segments.segment_profiles GROUP BY ds ORDER BY ds")
    assert rows == [("2026-03-01", 10), ("2026-03-02", 12)]


def test_failed_publish_leaves_the_previous_version(bi_target):
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    # A broken newer partition: every user in segment 0, plus a duplicated profile row that violates the
    # (ds, segment_id) key only after the labels were already replaced inside the transaction.
    _write_day("2026-03-02", users=20, segment_of=lambda i: 0, version="2")
    bad = warehouse.read_arrow("segments.segment_profiles", "2026-03-02")
    warehouse.write_arrow("segments.segment_profiles", pa.concat_tables([bad, bad]), "2026-03-02")
    with pytest.raises(Exception):
        publish.publish("2026-03-02")
    _, rows = bi_access.query("SELECT count(*), max(ds), max(model_version) FROM segments.user_segments")
    assert rows == [(10, "2026-03-01", "1")]
    if bi_target == "duckdb":
        assert _bi_files() == ["serving.duckdb", "serving.duckdb.lock"]  # the failed copy is gone


# --- DuckDB: publishing while readers read ------------------------------------------------------------

# One version is complete when the current labels, their publish_log row and their profiles agree.
VERSION = """
    SELECT (SELECT count(*) FROM segments.user_segments) AS labels,
           (SELECT max(ds) FROM segments.user_segments) AS ds,
           (SELECT users FROM segments.publish_log WHERE ds = (SELECT max(ds) FROM segments.user_segments)),
           (SELECT sum(users) FROM segments.segment_profiles
             WHERE ds = (SELECT max(ds) FROM segments.user_segments)) AS profiled
"""

# A BI tool in another process: one read-only connection, held open while the test publishes.
HOLDING_READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(*con.execute(sys.argv[2]).fetchone(), flush=True)
sys.stdin.readline()
print(*con.execute(sys.argv[2]).fetchone(), flush=True)
"""

# Readers in another process that connect, read one version and disconnect, in a loop until told to
# stop: half as a BI tool does (duckdb.connect read-only), half as `segments sql` does.
POLLING_READER = """
import json, os, sys, duckdb
from jobs import bi_access
path, version, stop = sys.argv[1:]
polls, seen = 0, set()
while not os.path.exists(stop):
    if polls % 2:
        con = duckdb.connect(path, read_only=True)
        row = con.execute(version).fetchone()
        con.close()
    else:
        row = bi_access.query(version)[1][0]
    if not row[0] == row[2] == row[3]:
        sys.exit(f"incomplete version: {row}")
    polls += 1
    seen.add(row[1])
    if polls == 1:
        print("ready", flush=True)
print(json.dumps({"polls": polls, "versions": sorted(seen)}), flush=True)
"""


def _bi_path() -> Path:
    return Path(settings.load().bi_url)


def _bi_files() -> list[str]:
    return sorted(p.name for p in _bi_path().parent.iterdir())


def _reader(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])


def test_duckdb_publish_works_while_a_reader_holds_the_file_open(platform_home):
    _write_day("2026-03-01", users=10)
    _write_day("2026-03-02", users=20)
    publish.publish("2026-03-01")
    reader = _reader(HOLDING_READER, str(_bi_path()), VERSION)
    try:
        assert reader.stdout.readline().split() == ["10", "2026-03-01", "10", "10"]
        # Before: "Could not set lock on file ... Conflicting lock is held" (DuckDB's own file lock).
        publish.publish("2026-03-02")
        assert bi_access.query(VERSION)[1] == [(20, "2026-03-02", 20, 20)]  # a new reader: the new one
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["10", "2026-03-01", "10", "10"]  # the open one, its own
        assert reader.wait(timeout=30) == 0, reader.stderr.read()
    finally:
        reader.kill()
        reader.wait()
    assert _bi_files() == ["serving.duckdb", "serving.duckdb.lock"]


def test_duckdb_readers_polling_during_publishes_always_see_a_complete_version(platform_home, tmp_path):
    dates = [f"2026-03-{day:02d}" for day in range(1, 7)]
    for i, ds in enumerate(dates):
        _write_day(ds, users=10 * (i + 1))
    publish.publish(dates[0])
    stop = tmp_path / "stop"
    reader = _reader(POLLING_READER, str(_bi_path()), VERSION, str(stop))
    try:
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        for ds in dates[1:] * 2:  # ten publishes, five of them reruns of a date
            publish.publish(ds)
            time.sleep(0.05)
        stop.touch()
        assert reader.wait(timeout=60) == 0, reader.stderr.read()
        report = json.loads(reader.stdout.readline())
    finally:
        reader.kill()
        reader.wait()
    assert report["polls"] >= 20
    assert len(report["versions"]) >= 2, report  # the readers did read across publishes


def test_duckdb_publishers_queue_and_a_stuck_one_is_named(platform_home, monkeypatch):
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    path = _bi_path()
    # flock locks belong to an open file: another open of the lock file in this process conflicts too.
    with publish._publisher_lock(path):
        waiting = threading.Thread(target=publish.publish, args=("2026-03-01",))
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()  # waits for the lock instead of failing
    waiting.join(timeout=30)
    assert not waiting.is_alive()

    monkeypatch.setattr(publish, "PUBLISH_WAIT_S", 0.5)
    with publish._publisher_lock(path), pytest.raises(publish.PublishBusy) as busy:
        publish.publish("2026-03-01")
    assert f"pid {os.getpid()}" in str(busy.value) and str(path) + ".lock" in str(busy.value)


def test_duckdb_publish_refuses_while_a_tool_holds_the_file_read_write(platform_home):
    _write_day("2026-03-01", users=10)
    _write_day("2026-03-02", users=20)
    publish.publish("2026-03-01")
    writer = _reader(HOLDING_READER.replace("read_only=True", "read_only=False"), str(_bi_path()), VERSION)
    try:
        assert writer.stdout.readline().split() == ["10", "2026-03-01", "10", "10"]
        with pytest.raises(PlatformError, match="open read-write"):  # it could be writing under the copy
            publish.publish("2026-03-02")
    finally:
        writer.kill()
        writer.wait()
    publish.publish("2026-03-02")
    assert bi_access.query(VERSION)[1] == [(20, "2026-03-02", 20, 20)]


def test_duckdb_publish_cleans_up_after_a_killed_writer(platform_home):
    _write_day("2026-03-01", users=10)
    _write_day("2026-03-02", users=20)
    publish.publish("2026-03-01")
    path = _bi_path()
    # A killed publisher's copy, its WAL and its spill directory ...
    dead = path.with_name(f"{path.name}.publish-999-deadbeef")
    for leftover in (dead, dead.with_name(dead.name + ".wal")):
        leftover.write_bytes(b"half a database")
    (dead.with_name(dead.name + ".tmp")).mkdir()
    # ... and a writer killed before its checkpoint: committed rows only in serving.duckdb.wal.
    killed = ("import duckdb, os, sys; con = duckdb.connect(sys.argv[1]); "
              "con.execute(\"INSERT INTO segments.publish_log VALUES ('2026-02-01', 1, 1)\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", killed, str(path)], check=True)
    assert path.with_name(path.name + ".wal").exists()

    publish.publish("2026-03-02")
    assert _bi_files() == ["serving.duckdb", "serving.duckdb.lock"]
    # The WAL's rows were kept, once: replaying it again onto the new file would have doubled them.
    _, rows = bi_access.query("SELECT ds, count(*) FROM segments.publish_log GROUP BY ds ORDER BY ds")
    assert rows == [("2026-02-01", 1), ("2026-03-01", 1), ("2026-03-02", 1)]
    assert bi_access.query(VERSION)[1] == [(20, "2026-03-02", 20, 20)]


# --- segments sql: read-only on both databases, errors in one line -----------------------------------

WRITES = [
    "INSERT INTO segments.publish_log VALUES ('2099-01-01', 1, 1) RETURNING ds",
    "CREATE TABLE segments.scratch (x INTEGER)",
    "DELETE FROM segments.user_segments",
    # End the read-only transaction, then write in the next one (PostgreSQL) ...
    "COMMIT; INSERT INTO segments.publish_log VALUES ('2099-01-01', 1, 1)",
    # ... or switch to another database, detach the file and attach it again, writable (DuckDB).
    "ATTACH ':memory:' AS scratch; USE scratch; DETACH serving; ATTACH '{path}' AS w; "
    "INSERT INTO w.segments.publish_log VALUES ('2099-01-01', 1, 1)",
]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("statement", WRITES)
def test_segments_sql_cannot_write(bi_target, capsys, statement):
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    def contents() -> dict[str, list[tuple]]:
        return {table: bi_access.query(f"SELECT * FROM segments.{table} ORDER BY 1, 2")[1]
                for table in ("user_segments", "segment_profiles", "publish_log")}

    before = contents()

    assert cli.main(["sql", statement.format(path=settings.load().bi_url)]) == 1
    _one_error_line(capsys)
    assert contents() == before
    _, rows = bi_access.query("SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'segments' ORDER BY 1")
    assert rows == [("publish_log",), ("segment_profiles",), ("user_segments",)]


@pytest.mark.parametrize("statement, says", [
    ("INSERT INTO segments.publish_log VALUES ('2099-01-01', 1, 1)", "read-only"),
    ("SELEC 1", "syntax error"),
    ("SELECT * FROM segments.nope", "nope"),
])
def test_segments_sql_errors_are_one_line(bi_target, capsys, statement, says):
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    assert cli.main(["sql", "SELECT segment_name, count(*) AS users FROM segments.user_segments GROUP BY 1 "
                            "ORDER BY 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["segment_name  users", "seg0          5    ",
                                                    "seg1          5    "]
    assert cli.main(["sql", statement]) == 1
    assert says in _one_error_line(capsys)


# --- an unreachable PostgreSQL --------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["publish", "--ds", "2026-03-01"], ["sql", "SELECT 1"]])
def test_an_unreachable_postgres_is_one_error_line_within_seconds(platform_home, monkeypatch, capsys, argv):
    pytest.importorskip("psycopg")
    _write_day("2026-03-01", users=10)
    # Port 1: nobody listens there.
    monkeypatch.setenv("SEGMENTS_BI_URL", "postgresql://publisher:s3cret@127.0.0.1:1/analytics")
    started = time.monotonic()
    assert cli.main(["-q", *argv]) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "s3cret" not in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "postgresql://127.0.0.1:1/analytics" in errors[0], err
    assert "hint:" in err


# --- the reader role ------------------------------------------------------------------------------------

@pytest.fixture
def new_role(postgres_url):
    """Makes unique role names (with a space and quotes, to prove they are quoted), and drops the roles and
    everything granted to them at the end: roles are cluster-wide, the test database is not."""
    import psycopg
    from psycopg import sql

    made = []

    def make() -> str:
        made.append(f'segments test reader {uuid.uuid4().hex[:8]} "q"')
        return made[-1]

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for role in made:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_grant_reader_makes_a_role_that_reads_segments_and_nothing_else(platform_home, postgres_url, new_role,
                                                                        monkeypatch, capsys):
    import psycopg
    from psycopg import sql

    monkeypatch.setenv("SEGMENTS_BI_URL", postgres_url)
    monkeypatch.setenv("BI_READER_PASSWORD", "never on a command line")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # what servers before 15 do
        admin.execute("CREATE SCHEMA private; CREATE TABLE private.secrets (x int); "
                      "CREATE TABLE public.secrets (x int)")
    login, group = new_role(), new_role()

    # Granted before the first publish: the publisher's tables, created later, are readable too.
    assert cli.main(["bi", "grant-reader", login, "--password-env", "BI_READER_PASSWORD"]) == 0
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    assert cli.main(["bi", "grant-reader", login, "--password-env", "BI_READER_PASSWORD"]) == 0  # again: fine
    assert cli.main(["bi", "grant-reader", group]) == 0  # granted after: the existing tables
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"created role {login} (LOGIN") and "revoked CREATE on schema public" in out[0]
    assert out[1].startswith(f"updated role {login} (LOGIN")
    assert out[2].startswith(f"created role {group} (NOLOGIN")

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        rows = admin.execute("SELECT rolname, rolcanlogin, rolpassword LIKE 'SCRAM-SHA-256$%%' "
                             "FROM pg_authid WHERE rolname IN (%s, %s) ORDER BY rolcanlogin",
                             [login, group]).fetchall()
        assert rows == [(group, False, None), (login, True, True)]  # a hash: the password never left the CLI
    # Trust authentication: the password is not checked here; the role name is what counts.
    with psycopg.connect(postgres_url, user=login, autocommit=True) as as_login, \
            psycopg.connect(postgres_url, autocommit=True) as as_group:
        as_group.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(group)))
        for reader in (as_login, as_group):
            assert reader.execute("SELECT count(*) FROM segments.user_segments").fetchone() == (10,)
            assert reader.execute("SELECT count(*) FROM segments.publish_log").fetchone() == (1,)
            for statement in ["INSERT INTO segments.publish_log VALUES ('2099-01-01', 1, 1)",
                              "UPDATE segments.user_segments SET segment_name = 'x'",
                              "DELETE FROM segments.segment_profiles",
                              "CREATE TABLE segments.scratch (x int)",
                              "CREATE TABLE public.scratch (x int)",
                              "SELECT * FROM private.secrets",
                              "SELECT * FROM public.secrets"]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(statement)


def test_grant_reader_refuses_what_it_cannot_do_safely(platform_home, postgres_url, monkeypatch, capsys):
    assert cli.main(["bi", "grant-reader", "bi_reader"]) == 1  # the default BI database: a DuckDB file
    assert "needs a PostgreSQL BI database" in _one_error_line(capsys)
    monkeypatch.setenv("SEGMENTS_BI_URL", postgres_url)
    assert cli.main(["bi", "grant-reader", "postgres"]) == 1  # never "reduce" a superuser to a reader
    assert "SUPERUSER" in _one_error_line(capsys)
    monkeypatch.delenv("NO_SUCH_PASSWORD_VARIABLE", raising=False)
    assert cli.main(["bi", "grant-reader", "bi_reader", "--password-env", "NO_SUCH_PASSWORD_VARIABLE"]) == 1
    assert "NO_SUCH_PASSWORD_VARIABLE" in _one_error_line(capsys)
