"""How people and BI tools reach the BI database: read-only queries, the reader role, connections.

- ``query``: what ``segments sql`` runs. Read-only on both databases: DuckDB opens the file in a
  read-only instance that cannot touch any other file; PostgreSQL runs the one statement in a read-only
  transaction that is always rolled back. Errors of the SQL are one line (``BiQueryFailed``).
- ``grant_reader``: a PostgreSQL role that can read schema ``segments`` and nothing else.
- ``connect_postgres``: the one way the platform connects to a PostgreSQL BI database: a short, bounded
  retry, then ``BiUnreachable`` naming the database (never the password).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import settings as settings_mod
from core.errors import PlatformError
from jobs.ingest.source import first_line

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SCHEMA = "segments"
# Three attempts: an unreachable server fails after at most 3 x CONNECT_TIMEOUT_S + 1.5 s (~11 s). A
# restarting server or a network blip is ridden out; a wrong host or port is reported quickly.
CONNECT_TIMEOUT_S = 3
CONNECT_BACKOFF_S = (0.5, 1.0)  # the sleeps between attempts
READ_ONLY_HINT = "segments sql only reads; the BI tables are written by segments publish"


class BiDatabaseMissing(PlatformError):
    hint = "publish a date first: segments publish --ds YYYY-MM-DD (or make demo)"


class BiUnreachable(PlatformError):
    hint = ("is the server up, and are host, port, database and user in SEGMENTS_BI_URL right? "
            "(a password: in the URL, PGPASSWORD or ~/.pgpass)")


class BiQueryFailed(PlatformError):
    """The user's SQL failed: a syntax error, a missing table, an attempt to write."""

    hint = "the tables are in schema segments: user_segments, segment_profiles, publish_log"


class NeedsPostgres(PlatformError):
    hint = ("set SEGMENTS_BI_URL=postgresql://user@host:5432/db; a DuckDB file has no roles: BI tools open "
            "it read-only (docs/operations.md, The BI database)")


def postgres_target(url: str) -> str:
    """``postgresql://host:port/db`` of a connection URL: what messages name, never a password."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    return (f"postgresql://{params.get('host') or 'localhost'}:{params.get('port') or 5432}/"
            f"{params.get('dbname') or params.get('user') or ''}")


def connect_postgres(url: str) -> psycopg.Connection:
    """A psycopg connection to the BI database, after at most ``len(CONNECT_BACKOFF_S) + 1`` attempts."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    # A connect_timeout in the URL wins: the operator chose it.
    timeout = {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": CONNECT_TIMEOUT_S}
    for backoff in (*CONNECT_BACKOFF_S, None):
        try:
            return psycopg.connect(url, **timeout)
        except psycopg.OperationalError as exc:
            if backoff is None:
                raise BiUnreachable(f"cannot connect to the BI database {postgres_target(url)} after "
                                    f"{len(CONNECT_BACKOFF_S) + 1} attempts: {first_line(exc)}") from None
            log.warning("BI database %s: %s; retrying in %g s", postgres_target(url), first_line(exc),
                        backoff)
            time.sleep(backoff)
    raise AssertionError("not reached: the last attempt returns or raises")


def query(sql: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only query against the BI database (what a BI tool sees): column names and rows."""
    s = settings_mod.load()
    return _query_postgres(s.bi_url, sql) if s.bi_is_postgres else _query_duckdb(Path(s.bi_url), sql)


def _query_duckdb(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    import duckdb

    if not path.exists():
        raise BiDatabaseMissing(f"the BI database {path} does not exist yet")
    # A read-only instance attaches every database read-only (the file again too); without external
    # access the SQL cannot read or write any other file (COPY TO, ATTACH), and the lock keeps it so.
    # (Attaching the file read-only to an in-memory instance is not enough: the SQL could detach it and
    # attach it again writable.) The connection is closed at once: DuckDB shares one instance per file
    # among a process's open connections, and a later query must open the file a publish swapped in.
    try:
        con = duckdb.connect(str(path), read_only=True,
                             config={"enable_external_access": False, "lock_configuration": True})
    except duckdb.Error as exc:
        raise BiQueryFailed(f"cannot open the BI database {path}: {first_line(exc)}",
                            hint="BI tools must open the file read-only; only segments publish writes "
                            "it") from None
    try:
        cur = con.execute(sql)
        return _result([d[0] for d in cur.description or []], cur)
    except duckdb.Error as exc:
        read_only = isinstance(exc, duckdb.PermissionException) or "read-only mode" in str(exc)
        raise _failed(exc, read_only) from None
    finally:
        con.close()


def _query_postgres(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    import psycopg

    con = connect_postgres(url)
    try:
        con.read_only = True  # BEGIN READ ONLY
        with con.cursor() as cur:
            try:
                # prepare=True: the extended protocol takes exactly one statement, so "COMMIT; INSERT ..."
                # cannot end the read-only transaction and write in the next one.
                cur.execute(sql, prepare=True)
                return _result([d.name for d in cur.description or []], cur)
            except psycopg.Error as exc:
                raise _failed(exc, isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)) from None
    finally:
        con.close()  # never committed: closing rolls the transaction back


def _result(columns: list[str], cur) -> tuple[list[str], list[tuple]]:
    return columns, (cur.fetchall() if columns else [])


def _failed(exc: Exception, read_only: bool) -> BiQueryFailed:
    return BiQueryFailed(f"the query failed: {first_line(exc)}", hint=READ_ONLY_HINT if read_only else "")


@dataclass
class ReaderGrant:
    role: str
    target: str
    created: bool
    login: bool
    revoked_public_create: bool  # CREATE on schema public was revoked from PUBLIC (servers before 15)


# Role attributes that would let a "reader" do more than read: pg_roles column -> the SQL keyword.
_POWERS = {"rolsuper": "SUPERUSER", "rolcreaterole": "CREATEROLE", "rolcreatedb": "CREATEDB",
           "rolreplication": "REPLICATION", "rolbypassrls": "BYPASSRLS"}


def grant_reader(role: str, password: str | None = None) -> ReaderGrant:
    """Create (if missing) a PostgreSQL role that can read schema segments of the BI database and nothing
    else, LOGIN with ``password`` or else NOLOGIN (a group role for BI users); safe to run again.

    Connects as the publisher (SEGMENTS_BI_URL), which needs CREATEROLE and must own schema segments.
    """
    import psycopg
    from psycopg import sql as q

    s = settings_mod.load()
    if not s.bi_is_postgres:
        raise NeedsPostgres(f"segments bi grant-reader needs a PostgreSQL BI database; SEGMENTS_BI_URL is "
                            f"the DuckDB file {s.bi_url}")
    target = postgres_target(s.bi_url)
    ident = q.Identifier(role)
    with connect_postgres(s.bi_url) as con, con.cursor() as cur:  # one transaction: all or nothing
        try:
            cur.execute(f"SELECT {', '.join(_POWERS)} FROM pg_roles WHERE rolname = %s", [role])
            existing = cur.fetchone()
            powers = [keyword for keyword, on in zip(_POWERS.values(), existing or ()) if on]
            if powers or role == con.info.user:
                raise PlatformError(f"role {role} exists and is more than a reader: "
                                    f"{', '.join(powers) or 'it is the user that publishes'}",
                                    hint="choose another role name; grant-reader never takes privileges away")
            if existing is None:
                cur.execute(q.SQL("CREATE ROLE {} NOLOGIN").format(ident))
            if password is not None:
                # Hashed here with the server's password_encryption: the clear password never reaches the
                # server, so no statement log can show it.
                hashed = con.pgconn.encrypt_password(password.encode(), role.encode()).decode()
                cur.execute(q.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(ident, q.Literal(hashed)))
            cur.execute(q.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                q.Identifier(con.info.dbname), ident))
            # Before the first publish the schema does not exist yet; the publisher creates it the same way.
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            schema = q.Identifier(SCHEMA)
            cur.execute(q.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
            cur.execute(q.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, ident))
            # Tables the publisher (this user) creates later are readable too.
            cur.execute(q.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                schema, ident))
            revoked = _no_create_in_public(cur, role)
            cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role])
            login = cur.fetchone()[0]
        except psycopg.Error as exc:
            raise PlatformError(f"segments bi grant-reader {role} on {target}: {first_line(exc)}",
                                hint="SEGMENTS_BI_URL's user needs CREATEROLE and must own schema segments "
                                "(the publisher's user does)") from None
    return ReaderGrant(role, target, existing is None, login, revoked)


def _no_create_in_public(cur, role: str) -> bool:
    """Make sure the role cannot create in schema public: servers before 15 grant that to PUBLIC."""
    from psycopg import sql as q

    cur.execute("SELECT to_regnamespace('public') IS NOT NULL "
                "AND has_schema_privilege(%s, 'public', 'CREATE')", [role])
    if not cur.fetchone()[0]:
        return False
    log.warning("revoking CREATE on schema public from PUBLIC in the BI database (the default before "
                "PostgreSQL 15)")
    cur.execute(q.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}").format(q.Identifier(role)))
    cur.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", [role])
    if cur.fetchone()[0]:
        raise PlatformError(f"role {role} can still create tables in schema public (granted through another "
                            "role?)", hint="revoke it by hand: REVOKE CREATE ON SCHEMA public FROM ...")
    return True
