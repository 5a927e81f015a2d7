"""Shared fixtures: an isolated platform root per test, one local Spark session per test process."""

from __future__ import annotations

import os
import shutil

import pytest

# Tests train many small models: one student each keeps CI short. The ensemble itself is unit-tested
# (tests/unit/test_ml_student.py), and the default of 3 is measured in bench/ABLATION.md.
os.environ.setdefault("SEGMENTS_ENSEMBLE_SEEDS", "1")


def _postgres_required() -> bool:
    return os.environ.get("SEGMENTS_REQUIRE_POSTGRES", "").lower() in ("1", "true", "yes")


@pytest.fixture
def platform_home(tmp_path, monkeypatch):
    """A completely separate platform: SEGMENTS_HOME alone moves every location."""
    home = tmp_path / "platform"
    monkeypatch.setenv("SEGMENTS_HOME", str(home))
    for var in ("SEGMENTS_WAREHOUSE", "MLFLOW_TRACKING_URI", "SEGMENTS_MLFLOW_ARTIFACTS", "AIRFLOW_HOME",
                "SEGMENTS_BI_URL", "SEGMENTS_GX_DIR"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Java 17 is needed for Spark")
    from jobs.session import build_spark

    session = build_spark("segments-tests")
    yield session
    session.stop()
