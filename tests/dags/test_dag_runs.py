"""Real runs of the DAGs with `airflow dags test` (bin/airflow, a fresh SQLite metadata DB, no pools, no
connections beyond spark_default), with stand-ins for spark-submit and the `segments` command first on the job
environment's PATH: the waits, the exit codes, the params and the alerts end to end, in a few seconds each.

The real chain (Spark, GX, MLflow, the BI publish) under Airflow is tests/integration/test_dag_run.py and
`make demo`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / "bin" / "airflow"

FAKE = """#!/usr/bin/env bash
# Stand-in for {name}: records its arguments (one call per line), prints a stage line, exits $FAKE_EXIT.
echo "$*" >> "{record}"
echo "[fake {name}] ok"
code="${{FAKE_EXIT:-0}}"
if [ "$code" != 0 ]; then
  echo "error: raw.orders ds=2026-06-29: 4 rows fail expect_column_values_to_be_between(amount)" >&2
  echo "hint: fix the data" >&2
fi
exit "$code"
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("platform")
    fakes = home / "fakebin"
    fakes.mkdir()
    for name in ("spark-submit", "segments"):
        path = fakes / name
        path.write_text(FAKE.format(name=name, record=home / f"{name}.calls"))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SEGMENTS_", "AIRFLOW", "MLFLOW_", "FAKE_"))} | {
        "SEGMENTS_HOME": str(home),
        "SEGMENTS_JOB_PYTHON": str(fakes / "python"),  # so the job environment's bin is the stand-ins' folder
        "SEGMENTS_SPARK_PROFILE": "standard",
    }
    out = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return home, env


def dags_test(platform, dag_id: str, ds: str, conf: dict | None = None, **env: str) -> str:
    home, base = platform
    args = [str(AIRFLOW), "dags", "test", dag_id, ds, *(["--conf", json.dumps(conf)] if conf else [])]
    out = subprocess.run(args, env=base | env, capture_output=True, text=True, timeout=600)
    return out.stdout + out.stderr


def tasks(platform, dag_id: str, ds: str) -> dict[str, tuple[str, int]]:
    """task id -> (state, try number) of the latest run of ``dag_id`` for ``ds``."""
    home, _ = platform
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? "
                            "ORDER BY id DESC LIMIT 1", (dag_id, f"{ds}%")).fetchone()[0]
        rows = db.execute("SELECT task_id, state, try_number FROM task_instance "
                          "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)).fetchall()
    return {task: (state, tries) for task, state, tries in rows}


def calls(platform, name: str) -> list[str]:
    path = platform[0] / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


def land(platform, ds: str, *tables: str) -> None:
    """What `segments ingest` leaves for a complete day: a partition with its _SUCCESS marker."""
    for table in tables:
        folder = platform[0] / "warehouse" / "raw" / table / f"ds={ds}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "_SUCCESS").touch()


def test_missing_data_fails_the_run_after_the_wait_and_alerts_naming_table_and_ds(platform, receiver):
    output = dags_test(platform, "segment_users_daily", "2026-06-30", SEGMENTS_WAIT_TIMEOUT_HOURS="0.001",
                       SEGMENTS_ALERT_WEBHOOK=receiver.url)
    assert tasks(platform, "segment_users_daily", "2026-06-30") == {
        "wait_for_raw_events": ("failed", 1), "wait_for_raw_orders": ("failed", 1),  # timed out, not retried
        "segment_users": ("upstream_failed", 0)}
    assert calls(platform, "spark-submit") == []
    by_task = {alert["task"]: alert for alert in receiver.received}
    assert sorted(by_task) == ["wait_for_raw_events", "wait_for_raw_orders"]
    for table in ("events", "orders"):
        alert = by_task[f"wait_for_raw_{table}"]
        assert (alert["event"], alert["dag"], alert["ds"], alert["state"]) == (
            "task_failed", "segment_users_daily", "2026-06-30", "failed")
        marker = platform[0] / "warehouse" / "raw" / table / "ds=2026-06-30" / "_SUCCESS"
        assert alert["error"].startswith(
            f"raw.{table} ds=2026-06-30 has not arrived: no _SUCCESS at {marker}")
        assert "/dags/segment_users_daily/runs/" in alert["log_url"]
    assert not any(secret in output for secret in receiver.SECRETS)


def test_a_rejected_gate_fails_the_chain_once_and_the_model_param_reaches_it(platform, receiver):
    land(platform, "2026-06-29", "events", "orders")
    dags_test(platform, "segment_users_daily", "2026-06-29", {"model": "champion"}, FAKE_EXIT="3",
              SEGMENTS_ALERT_WEBHOOK=receiver.url)
    assert tasks(platform, "segment_users_daily", "2026-06-29") == {
        "wait_for_raw_events": ("success", 1), "wait_for_raw_orders": ("success", 1),
        "segment_users": ("failed", 1)}  # exit code 3: failed at the first try, though retries=1
    [call] = calls(platform, "spark-submit")
    assert call.endswith("app/spark_submit_main.py --quiet run --ds 2026-06-29 --model champion")
    [alert] = receiver.received
    assert alert["task"] == "segment_users" and alert["ds"] == "2026-06-29"
    assert alert["error"].startswith(
        "error: raw.orders ds=2026-06-29: 4 rows fail expect_column_values_to_be_between(amount) "
        "(spark-submit of segments exited with 3: a data-quality gate rejected the input; not retried")


def test_a_complete_day_runs_the_chain_then_training_with_its_params(platform):
    land(platform, "2026-06-28", "events", "orders")  # raw.users: no marker, not waited for
    dags_test(platform, "segment_users_daily", "2026-06-28")
    assert tasks(platform, "segment_users_daily", "2026-06-28") == {
        "wait_for_raw_events": ("success", 1), "wait_for_raw_orders": ("success", 1),
        "segment_users": ("success", 1)}
    assert calls(platform, "spark-submit")[-1].endswith("--quiet run --ds 2026-06-28 --model recorded")

    # No pool segments_writer exists in this metadata DB: `dags test` runs its tasks all the same.
    dags_test(platform, "train_segmenter", "2026-06-28", {"epochs": 2, "method": "rfm_kmeans", "seed": 5})
    assert tasks(platform, "train_segmenter", "2026-06-28") == {
        "wait_for_daily_run": ("success", 1), "build_features": ("success", 1),
        "validate_features": ("success", 1), "train": ("success", 1)}
    assert calls(platform, "spark-submit")[-1].endswith("--quiet features --ds 2026-06-28 --refit-params")
    assert calls(platform, "segments") == [
        "--quiet validate --table features.user_features --ds 2026-06-28",
        "--quiet train --ds 2026-06-28 --epochs 2 --method rfm_kmeans --seed 5"]


def test_training_refuses_a_date_whose_daily_run_failed(platform, receiver):
    dags_test(platform, "train_segmenter", "2026-06-29", SEGMENTS_ALERT_WEBHOOK=receiver.url)
    states = tasks(platform, "train_segmenter", "2026-06-29")
    assert states["wait_for_daily_run"] == ("failed", 1)
    assert {states[t][0] for t in ("build_features", "validate_features", "train")} == {"upstream_failed"}
    [alert] = receiver.received
    assert alert["task"] == "wait_for_daily_run" and "failed" in alert["error"]
