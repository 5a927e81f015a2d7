"""The stack end to end: backfills through the real scheduler (not `dags test`), reprocessing with the old
model and with the champion, every table checked, and a teardown that leaves no process.

Brings the stack up (app/stack.py: Airflow api-server, scheduler, dag-processor, triggerer on PostgreSQL
with LocalExecutor, an MLflow server, Spark standalone, BI on PostgreSQL) in a temporary SEGMENTS_HOME
with databases of its own, seeds a small warehouse, trains v1 through the MLflow server, then:

1. `bin/backfill` of two dates: both created, run in order, one label per user per date, v1 recorded;
2. the same command again: nothing created, and it says so;
3. v2 becomes champion; reprocess the first date (model: recorded) -> still v1, same counts, and the BI
   current table keeps the newer date's labels; reprocess the second with --model champion -> v2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.integration.conftest import ADMIN_URL

pytestmark = [pytest.mark.integration, pytest.mark.spark]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
END = "2026-03-31"
TRAIN_DS, FIRST, SECOND = "2026-03-28", "2026-03-29", "2026-03-30"


def _run(*command: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1200)
    if check:
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def stack_home(tmp_path_factory):
    psycopg = pytest.importorskip("psycopg")
    from app import stack

    home = tmp_path_factory.mktemp("stack") / "home"
    prefix = f"segments_t{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENTS_", "MLFLOW_", "AIRFLOW"))}
    env.update(SEGMENTS_HOME=str(home), SEGMENTS_TRAIN_EPOCHS="2", SEGMENTS_ENSEMBLE_SEEDS="1",
               SEGMENTS_SPARK_PROFILE="small-machine", PYTHONWARNINGS="ignore")
    config = stack.StackConfig.from_env(home=home, prefix=prefix, ports=stack.free_ports())
    stack.up(config)
    try:
        segments = [sys.executable, "-m", "app.cli", "-q"]
        _run(*segments, "seed", "--users", "300", "--days", "40", "--end-date", END, env=env)
        _run(*segments, "features", "--ds", TRAIN_DS, env=env)
        _run(*segments, "train", "--ds", TRAIN_DS, env=env)
        yield home, env
    finally:
        stack.down(home)
        left = [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True
                                                ).stdout.splitlines() if str(home) in line]
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            for which in stack.DATABASES:
                admin.execute(f'DROP DATABASE IF EXISTS "{prefix}_{which}" WITH (FORCE)')
        assert not left, f"processes left after down: {left}"


def _segments_table(env: dict, name: str, ds: str) -> "object":
    """A warehouse table partition as pandas, read in this process with the test's SEGMENTS_HOME."""
    from core import warehouse

    os.environ["SEGMENTS_HOME"] = env["SEGMENTS_HOME"]
    return warehouse.read_pandas(name, ds)


def _bi(env: dict, sql: str) -> list[str]:
    out = _run(sys.executable, "-m", "app.cli", "sql", sql, env=env).stdout.splitlines()
    return [line.strip() for line in out[1:]]


def test_backfill_reprocess_with_the_old_model_and_the_champion(stack_home, monkeypatch):
    home, env = stack_home
    monkeypatch.setenv("SEGMENTS_HOME", str(home))
    backfill = [os.path.join(REPO, "bin", "backfill"), "--poll", "2"]

    paused = _run(*backfill, "--from", FIRST, "--to", SECOND, env=env, check=False)
    assert paused.returncode == 1 and "is paused" in paused.stderr, paused.stderr  # nothing would ever start
    done = _run(*backfill, "--unpause", "--from", FIRST, "--to", SECOND, env=env)
    assert "2 created, 0 reprocessed, 0 skipped" in done.stdout, done.stdout
    assert "done: 2 succeeded, 0 failed" in done.stdout, done.stdout
    counts = {}
    for ds in (FIRST, SECOND):
        labels = _segments_table(env, "segments.user_segments", ds)
        assert labels["user_id"].is_unique and len(labels) > 0  # one label per user per date
        assert set(labels["model_version"]) == {"1"}
        counts[ds] = len(labels)
        assert _segments_table(env, "segments.date_models", ds).to_dict("records") == [
            {"model_name": "user_segmenter", "first_version": "1", "version": "1"}]
    assert _bi(env, "SELECT ds FROM segments.publish_log ORDER BY ds") == [FIRST, SECOND]

    again = _run(*backfill, "--from", FIRST, "--to", SECOND, env=env)
    assert "0 created, 0 reprocessed, 2 skipped; nothing to run" in again.stdout, again.stdout

    segments = [sys.executable, "-m", "app.cli", "-q"]
    _run(*segments, "train", "--ds", SECOND, "--seed", "5", env=env)
    _run(*segments, "model", "promote", "--version", "2", "--reason", "test", env=env)

    old = _run(*backfill, "--from", FIRST, "--to", FIRST, "--reprocess", "completed", env=env)
    assert "0 created, 1 reprocessed, 0 skipped" in old.stdout and "1 succeeded" in old.stdout, old.stdout
    labels = _segments_table(env, "segments.user_segments", FIRST)
    assert set(labels["model_version"]) == {"1"} and len(labels) == counts[FIRST] and labels["user_id"].is_unique
    # The BI current table still holds the newer date's labels (v1 of SECOND), not FIRST's rerun.
    second = _segments_table(env, "segments.user_segments", SECOND)
    current = set(_bi(env, "SELECT user_id || ':' || segment_id FROM segments.user_segments"))
    assert current == {f"{u}:{s}" for u, s in zip(second["user_id"], second["segment_id"])}

    new = _run(*backfill, "--from", SECOND, "--to", SECOND, "--reprocess", "completed", "--model", "champion",
               env=env)
    assert "1 reprocessed" in new.stdout and "1 succeeded" in new.stdout, new.stdout
    labels = _segments_table(env, "segments.user_segments", SECOND)
    assert set(labels["model_version"]) == {"2"} and len(labels) == counts[SECOND] and labels["user_id"].is_unique
    assert _segments_table(env, "segments.date_models", SECOND).to_dict("records") == [
        {"model_name": "user_segmenter", "first_version": "1", "version": "2"}]
    assert _bi(env, "SELECT DISTINCT model_version FROM segments.user_segments") == ["2"]
