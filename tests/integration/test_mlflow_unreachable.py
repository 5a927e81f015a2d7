"""An unreachable MLflow tracking server fails a command in seconds with one `error:` line naming it
(MLflow's own defaults retry for about 4.5 minutes and end in a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core.model_registry import HTTP_DEFAULTS

pytestmark = [pytest.mark.integration]

NOBODY = "http://127.0.0.1:1"  # port 1: connection refused at once


def _segments_without_server(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`segments -q ...` with MLflow's HTTP settings left to the platform; the result and its seconds."""
    env = {k: v for k, v in os.environ.items() if k not in HTTP_DEFAULTS} | {"MLFLOW_TRACKING_URI": NOBODY}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "app.cli", "-q", *args], capture_output=True, text=True,
                            timeout=120, env=env)
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", [("score", "--ds", "2026-03-29"), ("model", "list")])
def test_an_unreachable_tracking_server_is_one_error_line_within_seconds(platform_home, command):
    result, seconds = _segments_without_server(*command)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: MLflow tracking server {NOBODY} is unreachable (connection refused, "
                      f"after {HTTP_DEFAULTS['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries)"]
    assert "hint: start the MLflow server or point MLFLOW_TRACKING_URI at it" in result.stderr
    assert seconds < 30

