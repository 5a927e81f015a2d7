"""jobs/bi_access.py: what messages say about a PostgreSQL BI database, and the bounded connect retry."""

from __future__ import annotations

import pytest

from jobs import bi_access

psycopg = pytest.importorskip("psycopg")


@pytest.mark.parametrize("url, target", [
    ("postgresql://publisher:s3cret@db.internal:6432/analytics?sslmode=require",
     "postgresql://db.internal:6432/analytics"),
    ("postgresql://publisher@db.internal/analytics?password=s3cret",
     "postgresql://db.internal:5432/analytics"),
    ("postgresql:///analytics", "postgresql://localhost:5432/analytics"),
])
def test_postgres_target_names_host_port_and_database_never_the_password(url, target):
    assert bi_access.postgres_target(url) == target


def test_connect_postgres_retries_briefly_then_names_the_database(monkeypatch):
    attempts, sleeps = [], []

    def refuse(url, **kwargs):
        attempts.append(kwargs)
        raise psycopg.OperationalError('connection to server at "db.internal", port 6432 failed: refused')

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(bi_access.time, "sleep", sleeps.append)
    with pytest.raises(bi_access.BiUnreachable) as unreachable:
        bi_access.connect_postgres("postgresql://publisher:s3cret@db.internal:6432/analytics")
    assert attempts == [{"connect_timeout": bi_access.CONNECT_TIMEOUT_S}] * 3
    assert sleeps == list(bi_access.CONNECT_BACKOFF_S)
    message = str(unreachable.value)
    assert "postgresql://db.internal:6432/analytics after 3 attempts" in message and "s3cret" not in message

    attempts.clear()  # a connect_timeout in the URL is the operator's choice
    with pytest.raises(bi_access.BiUnreachable):
        bi_access.connect_postgres("postgresql://publisher@db.internal:6432/analytics?connect_timeout=20")
    assert attempts == [{}] * 3
