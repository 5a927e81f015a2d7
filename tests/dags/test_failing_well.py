"""Failing well, operator by operator: a rejected gate (exit code 3) is not retried, other failures are, and
a wait for data ends at its deadline, naming what is missing, under a triggerer as under ``dags test``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred

FAKE = """#!/usr/bin/env bash
# A stand-in for spark-submit / segments: records its arguments, prints a stage line and an error, exits $1.
printf '%s\\n' "$@" > "{record}"
echo "[validate] raw.events ds=2026-06-30: checking"
echo "some JVM chatter"
if [ "{code}" != 0 ]; then
  echo "error: raw.events ds=2026-06-30: 12 rows fail expect_column_values_to_not_be_null(user_id)" >&2
  echo "hint: fix the data" >&2
fi
exit {code}
"""


def fake_binary(folder: Path, name: str, code: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE.format(record=folder / f"{name}.args", code=code))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(("text", "line"), [
    ("Cannot execute: spark-submit ... Error code is: 3.\nLast spark-submit output:\n[x] y\n"
     "error: a\nhint: b", "error: a"),
    ("error: first\nerror: second\n", "error: second"),
    ("Bash command failed", None),
])
def test_error_line(common, text, line):
    assert common.error_line(text) == line


@pytest.fixture()
def spark_task(common, tmp_path, monkeypatch):
    """The daily chain's operator, submitting to a stand-in spark-submit first on PATH."""
    conn = {"conn_type": "spark", "host": "local[2]", "extra": {"spark-binary": "spark-submit"}}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(conn))

    def make(code: int):
        fake_binary(tmp_path / "bin", "spark-submit", code)
        return common.SegmentsSparkSubmit(
            task_id="segment_users", application="app/spark_submit_main.py", conn_id="spark_default",
            application_args=["--quiet", "run", "--ds", "2026-06-30", "--model", "recorded"],
            env_vars={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})

    return make


def test_a_rejected_gate_fails_the_spark_task_for_good(spark_task, tmp_path):
    with pytest.raises(AirflowFailException) as failed:
        spark_task(3).execute({})
    message = str(failed.value)
    assert message.startswith(
        "error: raw.events ds=2026-06-30: 12 rows fail expect_column_values_to_not_be_null")
    assert "exited with 3" in message and "not retried" in message
    args = (tmp_path / "bin" / "spark-submit.args").read_text().split("\n")
    assert args[-8:-1] == ["app/spark_submit_main.py", "--quiet", "run", "--ds", "2026-06-30", "--model",
                           "recorded"]


def test_another_failure_of_the_spark_task_is_retried(spark_task):
    with pytest.raises(AirflowException) as failed:
        spark_task(1).execute({})
    assert not isinstance(failed.value, AirflowFailException)  # AirflowFailException alone skips the retries
    assert str(failed.value).startswith("error: raw.events ds=2026-06-30: 12 rows fail")
    assert "exited with 1" in str(failed.value)


def test_the_spark_task_succeeds_when_spark_submit_does(spark_task):
    spark_task(0).execute({})


def _execute(task, retried: bool | None) -> str | None:
    """Run the task; None when it must succeed, else check the failure is retried (or not): its message."""
    if retried is None:
        task.execute({})
        return None
    with pytest.raises(AirflowException) as failed:
        task.execute({})
    assert isinstance(failed.value, AirflowFailException) is not retried  # AirflowFailException: no retries
    return str(failed.value)


FAKE_CLIENT = """#!/usr/bin/env bash
# A stand-in for the segments command: records where its Spark is, exits $1.
printf '%s\\n' "$SEGMENTS_SPARK_REMOTE" "$@" > "{record}"
[ "{code}" = 0 ] || echo "error: raw.events ds=2026-06-30: 12 rows fail expect_column_values_to_not_be_null"
exit {code}
"""


@pytest.mark.parametrize(("code", "retried"), [(3, False), (1, True), (0, None)])
def test_with_a_spark_connect_connection_the_spark_task_runs_segments_as_its_client(
        spark_task, common, tmp_path, monkeypatch, code, retried):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT",
                       json.dumps({"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15077}))
    client = tmp_path / "client" / "segments"
    client.parent.mkdir()
    client.write_text(FAKE_CLIENT.format(record=tmp_path / "client.args", code=code))
    client.chmod(0o755)
    monkeypatch.setattr(common, "SEGMENTS_CLI", str(client))
    task = spark_task(0)  # spark-submit would succeed: it must not be the one that runs
    failure = _execute(task, retried)
    assert failure is None or f"segments run (Spark Connect) exited with {code}" in failure
    remote, *args = (tmp_path / "client.args").read_text().split("\n")[:-1]
    assert remote.startswith("sc://127.0.0.1:15077")
    assert args == ["--quiet", "run", "--ds", "2026-06-30", "--model", "recorded"]
    assert not (tmp_path / "bin" / "spark-submit.args").exists()


def test_without_a_spark_connect_connection_there_is_no_endpoint(common, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", raising=False)
    assert common.spark_connect_url() is None


@pytest.mark.parametrize(("code", "retried"), [(3, False), (1, True), (0, None)])
def test_the_segments_command_fails_the_same_way(common, tmp_path, monkeypatch, code, retried):
    monkeypatch.setattr(common, "SEGMENTS_CLI", str(fake_binary(tmp_path, "segments", code)))
    arguments = ["validate", "--table", "features.user_features", "--ds", "2026-06-30"]
    failure = _execute(common.SegmentsCommand(task_id="validate_features", arguments=arguments), retried)
    if failure is not None:
        assert failure.startswith("error: raw.events ds=2026-06-30: 12 rows fail")
        assert f"segments validate exited with {code}" in failure
    assert (tmp_path / "segments.args").read_text().split("\n")[:3] == ["--quiet", "validate", "--table"]


# --- waits ----------------------------------------------------------------------------------------------
def _run(trigger):
    async def first():
        async for event in trigger.run():
            return event
    return asyncio.run(first())


def test_the_deadline_trigger_passes_the_first_event_on(tmp_path):
    from airflow.providers.standard.triggers.file import FileTrigger

    from app.triggers import WithDeadline

    (tmp_path / "_SUCCESS").touch()
    trigger = WithDeadline.wrap(FileTrigger(str(tmp_path / "_SUCCESS"), poke_interval=0.1),
                                datetime.now(timezone.utc) + timedelta(seconds=30))
    assert _run(trigger).payload is True


def test_the_deadline_trigger_fires_a_timeout_event_at_its_deadline_and_survives_a_restart(tmp_path):
    from airflow.providers.standard.triggers.file import FileTrigger

    from app.triggers import WithDeadline

    deadline = datetime.now(timezone.utc) + timedelta(seconds=1)
    trigger = WithDeadline.wrap(FileTrigger(str(tmp_path / "_SUCCESS"), poke_interval=0.1), deadline,
                                about={"table": "raw.events", "ds": "2026-06-30"})
    classpath, kwargs = trigger.serialize()
    assert classpath == "app.triggers.WithDeadline"
    assert kwargs["deadline"] == deadline.isoformat()  # absolute: a restarted trigger keeps the same deadline
    restarted = WithDeadline(**kwargs)
    started = datetime.now(timezone.utc)
    event = _run(restarted)
    assert event.payload == {"status": "timeout", "deadline": deadline.isoformat(), "table": "raw.events",
                             "ds": "2026-06-30"}
    assert timedelta(seconds=0.5) < datetime.now(timezone.utc) - started < timedelta(seconds=5)


@pytest.fixture()
def wait(common, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMENTS_WAREHOUSE", raising=False)
    return common.RawPartitionSensor(task_id="wait_for_raw_events", table="raw.events", ds="2026-06-30",
                                     timeout=120)


def test_a_wait_for_data_that_is_there_does_not_defer(wait, tmp_path):
    marker = tmp_path / "warehouse" / "raw" / "events" / "ds=2026-06-30" / "_SUCCESS"
    marker.parent.mkdir(parents=True)
    marker.touch()
    assert wait.marker == str(marker)
    wait.execute({})  # no TaskDeferred


def test_a_wait_for_missing_data_defers_then_fails_naming_table_ds_and_file(wait, tmp_path):
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert type(trigger).__name__ == "WithDeadline"
    assert trigger.kwargs["filepath"] == wait.marker and trigger.classpath.endswith("file.FileTrigger")
    assert 110 < trigger.seconds_left() <= 120  # the sensor's timeout, from now
    assert deferred.value.timeout == timedelta(seconds=120) + timedelta(minutes=10)  # Airflow's, behind it
    with pytest.raises(AirflowSensorTimeout) as timed_out:  # fails without retries, whatever `retries` says
        wait.execute_complete({}, event={"status": "timeout", "table": "raw.events", "ds": "2026-06-30"})
    assert str(timed_out.value).startswith(
        f"raw.events ds=2026-06-30 has not arrived: no _SUCCESS at {wait.marker}")
    assert "after 120 s" in str(timed_out.value)


def test_a_wait_resumed_by_its_file_succeeds(wait):
    wait.execute_complete({}, event=True)


@pytest.mark.parametrize(("text", "code"), [
    ("Cannot execute: spark-submit ... Error code is: 3.", 3),
    ("Cannot execute: ... Error code is: 1. Kubernetes spark exit code is: 3\nerror: x", 3),  # the driver's
    ("Cannot execute: ... Error code is: 1. Kubernetes spark exit code is: 0", 1),
])
def test_the_exit_code_is_read_from_the_hooks_failure(common, monkeypatch, text, code):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    def failed_submit(self, context):
        raise AirflowException(text)

    monkeypatch.setattr(SparkSubmitOperator, "execute", failed_submit)
    task = common.SegmentsSparkSubmit(task_id="segment_users", application="app/spark_submit_main.py")
    with pytest.raises(AirflowException) as failed:
        task.execute({})
    assert isinstance(failed.value, AirflowFailException) is (code == 3)
    assert f"exited with {code}" in str(failed.value)


def test_another_error_of_the_spark_task_is_raised_as_it_is(common, monkeypatch):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    def failed_submit(self, context):
        raise AirflowException("No driver id is known")

    monkeypatch.setattr(SparkSubmitOperator, "execute", failed_submit)
    with pytest.raises(AirflowException, match="^No driver id is known$"):
        common.SegmentsSparkSubmit(task_id="t", application="a.py").execute({})
