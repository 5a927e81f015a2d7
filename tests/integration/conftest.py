"""Fixtures that need real servers. PostgreSQL tests skip without a server unless
SEGMENTS_REQUIRE_POSTGRES is set (CI sets it), in which case they fail."""

from __future__ import annotations

import os
import uuid

import pytest

ADMIN_URL = os.environ.get("SEGMENTS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url():
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_URL}: {exc}".splitlines()[0]
        if os.environ.get("SEGMENTS_REQUIRE_POSTGRES", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (SEGMENTS_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    name = f"segments_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
