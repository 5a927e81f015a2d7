"""Shared fixtures: an isolated platform root per test, one local Spark session per test process."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_ensemble_seed():
    # Tests train many small models: one student each keeps CI short. The ensemble itself is unit-tested
    # (tests/unit/test_ml_student.py), and the default of 3 is measured in bench/ABLATION.md.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_ENSEMBLE_SEEDS", os.environ.get("SEGMENTS_ENSEMBLE_SEEDS", "1"))
        yield


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

    with pytest.MonkeyPatch.context() as mp:
        # build_spark() sets the Python of the Spark workers if unset; set here first, they are restored.
        for var in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
            mp.setenv(var, os.environ.get(var, sys.executable))
        session = build_spark("segments-tests")
        yield session
        session.stop()
