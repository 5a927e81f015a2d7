"""One real run of the Airflow DAG segment_users_daily: Airflow env, SQLite metadata DB, spark-submit of
the job env, GX, the MLflow champion and the DuckDB publish, for one logical date."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core import warehouse
from tests.integration.conftest import SEED_END

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / "bin" / "airflow"


def _airflow(*args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(AIRFLOW), *args], env=os.environ.copy(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def airflow_platform(trained_platform):
    if not (REPO / ".venv-airflow" / "bin" / "airflow").exists():
        pytest.fail("the Airflow environment is missing: run make install")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(trained_platform))
        mp.delenv("AIRFLOW_HOME", raising=False)
        out = _airflow("db", "migrate", timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        yield trained_platform


def test_daily_dag_run_for_one_date(airflow_platform):
    ds = SEED_END
    out = _airflow("dags", "test", "segment_users_daily", ds, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = _airflow("dags", "list-runs", "segment_users_daily", "-o", "json", timeout=120)
    listing = next(line for line in runs.stdout.splitlines() if line.startswith("["))
    run = max((r for r in json.loads(listing) if (r["logical_date"] or "").startswith(ds)),
              key=lambda r: r["run_after"])
    assert run["state"] == "success", runs.stdout

    # Every user of the features table for ds has exactly one label, and BI got the date.
    features = set(warehouse.read_pandas("features.user_features", ds, ["user_id"]).user_id)
    labels = warehouse.read_pandas("segments.user_segments", ds, ["user_id"]).user_id
    assert set(labels) == features and labels.is_unique
    from jobs.publish import query

    assert query("SELECT ds FROM segments.publish_log WHERE ds = '%s'" % ds)[1] == [(ds,)]
    assert (airflow_platform / "airflow" / "airflow.db").exists()  # Airflow state under SEGMENTS_HOME


def test_a_failed_gate_reaches_the_task_log_as_its_one_error_line(airflow_platform):
    # The chain task through Airflow's task runner and the SparkSubmitOperator, for a date without data: its
    # first stage, the raw gate, fails (`tasks test` exits 0 whatever the task did: its log says how it ended).
    out = _airflow("tasks", "test", "segment_users_daily", "segment_users", "2026-05-01", timeout=600)
    lines = (out.stdout + out.stderr).splitlines()
    assert any("Task failed" in line for line in lines), "\n".join(lines[-40:])
    # The lines reach Airflow's log as the command printed them, each a line of its own.
    assert "error: raw.events ds=2026-05-01: no partition: the data has not arrived (or the upstream stage has " \
           "not run)" in lines
    assert any(line.startswith("hint: ") for line in lines)
