"""One writer per date, with real processes: two `segments run` of one date, and training's parameter
refit beside the daily run. On a copy of the trained platform, on its already featurised date: one chain
run, and no side effect on the tests that share the platform."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from core import warehouse
from core.locks import date_lock
from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@pytest.fixture
def platform(trained_platform, tmp_path, monkeypatch):
    """A private copy of the trained platform's warehouse and registry (its model versions still read their
    artifacts from the original, read-only), as SEGMENTS_HOME of this test and the processes it starts."""
    home = tmp_path / "platform"
    for part in ("warehouse", "mlflow"):
        shutil.copytree(trained_platform / part, home / part)
    monkeypatch.setenv("SEGMENTS_HOME", str(home))
    return home


def _segments(*args: str) -> subprocess.Popen:
    """`segments -q ...` in a process of its own, on the platform of SEGMENTS_HOME (the fixture's)."""
    return subprocess.Popen([sys.executable, "-m", "app.cli", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _first_to_exit(processes: list[subprocess.Popen], timeout: float = 120) -> subprocess.Popen:
    deadline = time.monotonic() + timeout
    while all(p.poll() is None for p in processes):
        assert time.monotonic() < deadline, "neither process ended"
        time.sleep(0.1)
    return next(p for p in processes if p.poll() is not None)


def _refused_by(err: str, holder: subprocess.Popen) -> None:
    """``err`` is one `error:` line naming ``holder`` (its command line and pid), a hint, no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert re.fullmatch(rf"error: ds={DS} is being written by 'segments -q run --ds {DS}' \(pid {holder.pid} "
                        rf"on {re.escape(socket.gethostname())}, since [0-9-]+ [0-9:]+ UTC\)", errors[0])
    assert "hint: wait for it to finish, or stop it" in err


def _bi(sql: str) -> list[str]:
    """The rows of a one-column query of the BI database, through `segments sql`."""
    result = subprocess.run([sys.executable, "-m", "app.cli", "sql", sql], capture_output=True, text=True,
                            timeout=120, check=True)
    return [line.strip() for line in result.stdout.splitlines()[1:]]


def test_one_writer_per_date_and_no_refit_inside_a_run(platform):
    params = {d: warehouse.partition_fingerprint("features.cleaning_params", d)
              for d in warehouse.partitions("features.cleaning_params")}
    # A killed Spark job's staging directory: the run's feature stage removes it before it writes.
    stale = Path(warehouse.table_path("features.user_features")) / f".spark-staging-{uuid.uuid4()}"
    (stale / "_temporary" / "0").mkdir(parents=True)

    runs = [_segments("run", "--ds", DS), _segments("run", "--ds", DS)]  # at once
    try:
        loser = _first_to_exit(runs)
        winner = runs[1 - runs.index(loser)]
        out, err = loser.communicate()
        assert loser.returncode == 1 and out == ""  # refused before any stage ran: it wrote nothing
        _refused_by(err, winner)

        # The training DAG's refit of the same date while the run holds it: refused as well.
        refit = _segments("features", "--ds", DS, "--refit-params")
        out, err = refit.communicate(timeout=120)
        assert winner.poll() is None, "the run ended before the refit was tried: the test proves nothing"
        assert refit.returncode == 1 and out == ""
        _refused_by(err, winner)

        out, err = winner.communicate(timeout=900)
    finally:
        for process in runs:
            process.kill()
            process.wait()
    assert winner.returncode == 0, err
    stages = [line.split("]")[0][1:] for line in out.splitlines() if line.startswith("[")]
    raw_gates, rest = stages[:-6], stages[-6:]  # one validation per raw table, then the chain
    assert raw_gates and set(raw_gates) == {"validate"}
    assert rest == ["features", "validate", "score", "validate", "profiles", "publish"]

    # The refit changed nothing: the run's features, labels and published rows are of one parameter fit.
    assert {d: warehouse.partition_fingerprint("features.cleaning_params", d)
            for d in warehouse.partitions("features.cleaning_params")} == params
    features = set(warehouse.read_pandas("features.user_features", DS, ["user_id"]).user_id)
    labels = warehouse.read_pandas("segments.user_segments", DS, ["user_id", "lifecycle"])
    assert set(labels.user_id[labels.lifecycle == "active"]) == features
    profiles = warehouse.read_pandas("segments.segment_profiles", DS, ["segment_name", "users"])
    published = _bi(f"SELECT segment_name || '=' || users FROM segments.segment_profiles WHERE ds = '{DS}'")
    assert sorted(published) == sorted(f"{name}={users}" for name, users in zip(profiles.segment_name,
                                                                                profiles.users))
    assert _bi(f"SELECT users FROM segments.publish_log WHERE ds = '{DS}'") == [str(len(labels))]

    assert not stale.exists()
    assert f"features.user_features: removed what interrupted writes left: {stale.name}" in err
    with date_lock(DS, "test"):  # released at the end of the run
        pass
