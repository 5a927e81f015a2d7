"""Fixtures that need real servers. PostgreSQL tests skip without a server unless
SEGMENTS_REQUIRE_POSTGRES is set (CI sets it), in which case they fail."""

from __future__ import annotations

import os
import uuid

import pytest

SEED_END = "2026-03-31"
DS = "2026-03-29"  # the model is trained as of DS; the pipeline tests score DS

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


@pytest.fixture(scope="session")
def trained_platform(tmp_path_factory, spark):
    """One seeded (600 users x 40 days), featurised and trained platform shared by the slow tests."""
    from app import cli
    from synthetic.generator import generate

    home = tmp_path_factory.mktemp("platform")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        for var in ("SEGMENTS_BI_URL", "MLFLOW_TRACKING_URI", "SEGMENTS_WAREHOUSE", "AIRFLOW_HOME",
                    "SEGMENTS_GX_DIR", "SEGMENTS_MLFLOW_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("SEGMENTS_TRAIN_EPOCHS", "4")
        generate(users=600, days=40, end_date=SEED_END, seed=7, progress=False)
        assert cli.main(["-q", "features", "--ds", DS]) == 0
        assert cli.main(["-q", "train", "--ds", DS]) == 0
        yield home


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """The production-like stack of `make up` (app/stack.py), running for the tests of a module: real
    Airflow (api-server, scheduler, dag-processor, triggerer), MLflow server and Spark master + worker
    processes, in a SEGMENTS_HOME of its own, with databases of its own on the test server (prefix
    segments_test_<random>: <prefix>_airflow, _mlflow, _bi, dropped afterwards) and free ports. PostgreSQL is
    required: no skip. Yields the StackConfig; commands run with SEGMENTS_HOME=str(config.home) use the
    stack (its stack.env), e.g. `bin/airflow backfill create ...` for its scheduler to run. The stack's
    processes (and the Airflow tasks they run) inherit this process's environment as it is when the fixture
    starts: set variables such as SEGMENTS_TRAIN_EPOCHS before requesting it."""
    import psycopg

    from app import stack

    config = stack.StackConfig.from_env(
        home=tmp_path_factory.mktemp("stack"), postgres_url=ADMIN_URL,
        prefix=f"segments_test_{uuid.uuid4().hex[:8]}", ports=stack.free_ports(), timeout=300)
    try:
        stack.up(config)
        yield config
    finally:
        try:
            stack.down(config.home)
        finally:
            with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
                for which in stack.DATABASES:
                    admin.execute(f'DROP DATABASE IF EXISTS "{config.database(which)}" WITH (FORCE)')


@pytest.fixture
def platform_copy(trained_platform, tmp_path, monkeypatch, spark):
    """A private copy of the trained platform's warehouse and registry (its model versions still read their
    artifacts from the original, read-only) as SEGMENTS_HOME: a test may change anything in it."""
    import shutil

    home = tmp_path / "platform"
    for part in ("warehouse", "mlflow"):
        shutil.copytree(trained_platform / part, home / part)
    monkeypatch.setenv("SEGMENTS_HOME", str(home))
    # mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI: left from an earlier test of the session, it
    # would point this copy at the original registry (a test here promoted v2 to the shared platform's champion).
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    return home
