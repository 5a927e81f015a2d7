"""`make up` / `make status` / `make down` for real (app/stack.py): every component comes up healthy on its
own databases and ports, the platform's commands use it while it is up, and `down` leaves no process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from app import stack
from core import settings
from core.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(900)]

MLFLOW_PROBE = """
import pathlib, tempfile
import mlflow
from core.model_registry import configure_mlflow

experiment = configure_mlflow()
with mlflow.start_run(experiment_id=experiment) as run:
    mlflow.log_metric("probe", 1.0)
    path = pathlib.Path(tempfile.mkdtemp()) / "probe.txt"
    path.write_text("through the server")
    mlflow.log_artifact(str(path))
print(run.info.run_id)
"""


def _command_env(config: stack.StackConfig) -> dict[str, str]:
    """A user's shell: nothing but SEGMENTS_HOME says where the platform is."""
    env = {k: v for k, v in os.environ.items() if k not in stack.stack_environment(config)}
    return {**env, "SEGMENTS_HOME": str(config.home), "PYTHONWARNINGS": "ignore"}


def _run(argv: list[str], config: stack.StackConfig) -> str:
    done = subprocess.run(argv, env=_command_env(config), capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_the_stack_serves_the_platform_and_goes_down_without_a_trace(local_stack, monkeypatch):
    config = local_stack
    ports = config.ports

    # status: every component healthy, on the stack's own databases.
    health = stack.status(config.home)
    assert [h.name for h in health] == ["postgres", *(c.name for c in stack.COMPONENTS)]
    assert all(h.healthy for h in health), [h for h in health if not h.healthy]
    assert f"{config.prefix}_airflow" in health[0].detail
    records = {name: r for name, r in stack._records(config.stack_dir).items()}
    assert set(records) == {c.name for c in stack.COMPONENTS}

    # up again: idempotent, the running processes are left alone.
    t0 = time.monotonic()
    stack.up(config, out=lambda line: None)
    assert time.monotonic() - t0 < 60
    assert {n: r["pid"] for n, r in stack._records(config.stack_dir).items()} == \
        {n: r["pid"] for n, r in records.items()}

    # The UIs answer; the REST API without a login (simple auth manager, everyone admin); the pool exists.
    for url in (f"http://127.0.0.1:{ports['airflow']}/", f"http://127.0.0.1:{ports['mlflow']}/",
                f"http://127.0.0.1:{ports['spark_master_ui']}/"):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read(2000).lower(), url
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['airflow']}/api/v2/pools/segments_writer",
                                timeout=10) as response:
        assert json.load(response)["slots"] == 1

    # The user's commands of this SEGMENTS_HOME use the stack (stack.env), nothing else set.
    shown = _run([sys.executable, "-m", "core.settings"], config)
    assert f"mlflow_tracking_uri = http://127.0.0.1:{ports['mlflow']}" in shown
    assert f"bi_url = postgresql://postgres@127.0.0.1:5432/{config.prefix}_bi" in shown
    assert f"spark_master = spark://127.0.0.1:{ports['spark_master']}" in shown
    assert f"stack = {config.env_file}" in shown
    airflow_env = _run([sys.executable, "-m", "core.settings", "--airflow-env"], config)
    assert f"/{config.prefix}_airflow" in airflow_env and "AIRFLOW__CORE__EXECUTOR=LocalExecutor" in airflow_env
    info = _run([str(REPO_ROOT / ".venv" / "bin" / "segments"), "info"], config)
    assert f"http://127.0.0.1:{ports['mlflow']}" in info and f"{config.prefix}_bi" in info

    # MLflow: a run logged through the server lands in its own database and its artifact store.
    run_id = _run([sys.executable, "-c", MLFLOW_PROBE], config).split()[-1]
    artifact = config.stack_dir / "mlflow" / "artifacts" / "user_segmentation" / run_id / "artifacts" / "probe.txt"
    assert artifact.read_text() == "through the server"
    with psycopg.connect(config.database_url("mlflow"), connect_timeout=5) as conn:
        assert conn.execute("SELECT artifact_location FROM experiments WHERE name = 'user_segmentation'"
                            ).fetchone() == (stack.MLFLOW_ARTIFACTS,)
        assert conn.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (run_id,)).fetchone() == (1,)

    # down: every process it started is gone (by pid, and by what they carry), stack.env too.
    pids = {**stack.stack_processes(config.stack_dir), **{r["pid"]: r["start"] for r in records.values()}}
    assert len(pids) >= len(stack.COMPONENTS)
    stack.down(config.home)
    assert not [pid for pid, start in pids.items() if stack._alive(pid, start)]
    assert not stack.stack_processes(config.stack_dir)
    assert not _processes_mentioning(str(config.home))
    assert not config.env_file.exists()
    assert not any(h.healthy for h in stack.status(config.home)[1:])
    monkeypatch.setenv("SEGMENTS_HOME", str(config.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert settings.load().mlflow_tracking_uri.startswith("sqlite:///")  # the embedded defaults again
    # The data is kept: the databases are still there (the fixture drops them).
    with psycopg.connect(config.database_url(None), connect_timeout=5) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {config.database(d) for d in stack.DATABASES} <= names
