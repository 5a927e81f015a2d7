"""Spark Connect: a job run as a thin client of a long-lived Spark driver (the stack's design, the daily DAG's
Spark task when the connection spark_connect_default exists) computes exactly what a driver of its own does.

A real Spark Connect server (the stack's component, on local[2]) and a private copy of the trained platform."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from app import cli, stack
from core import warehouse
from core.settings import REPO_ROOT
from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    server, url = stack.start_connect_server(tmp_path_factory.mktemp("spark-connect"), master="local[2]")
    try:
        yield url
    finally:
        stack.stop_group(server)


def _segments(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "-q", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=os.environ | env, timeout=600)


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return tuple(warehouse.read_pandas(name, DS).sort_values("user_id").reset_index(drop=True)
                 for name in ("features.user_features", "segments.user_segments"))


def test_a_run_through_spark_connect_gives_the_same_features_and_labels(platform_copy, connect_server):
    assert cli.main(["-q", "run", "--ds", DS]) == 0  # a driver in this process (the session's local[2])
    local = _tables()

    done = _segments("run", "--ds", DS, SEGMENTS_SPARK_REMOTE=connect_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[score]" in done.stdout and "[publish]" in done.stdout
    remote = _tables()

    pd.testing.assert_frame_equal(remote[0], local[0])
    pd.testing.assert_frame_equal(remote[1], local[1])
    assert len(remote[1]) > 100


def test_an_unreachable_server_is_one_line_at_once(platform_home):
    port = stack.free_ports(("spark_connect",))["spark_connect"]  # nothing listens there
    started = time.monotonic()
    done = _segments("features", "--ds", DS, SEGMENTS_SPARK_REMOTE=f"sc://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (f"error: Spark Connect server sc://127.0.0.1:{port} is unreachable "
                                           "(Connection refused)")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60  # the client alone would retry for ~10 minutes
