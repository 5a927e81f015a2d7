"""Operators, settings and task factories shared by the DAGs. Orchestration only: nothing here imports
jobs/ or ml/, and only stdlib modules of the platform (settings, the chain, warehouse paths) are read at
parse time.

Spark work runs the job environment's ``segments`` command as a client of a long-lived Spark driver when the
connection ``spark_connect_default`` exists (``make up`` defines it: the stack's Spark Connect server), else as
spark-submit of ``app/spark_submit_main.py`` with the job environment's Spark (master from the ``spark_default``
connection, ``local[2]`` by default); non-Spark stages (training, its gate) run the job environment's
``segments`` command, without a shell.

Failing well. The ``segments`` command exits with 3 when a data-quality gate rejected the input, 1 for other
expected errors: a task whose command exits with 3 fails at once (``AirflowFailException``: rerunning
cannot fix the data), any other failure is retried once. Every task has an ``execution_timeout``; the waits
for data have a timeout of their own and are never retried. When an alert destination is configured
(``app/alerts.py``), a task that fails for good, or a daily run still unfinished long after its day ended,
notifies it.

Settings read here (environment, at parse time):

=============================  ===========================================================================
``SEGMENTS_START_DATE``        first logical date of the schedules (default 2026-01-01)
``SEGMENTS_CATCHUP``           ``true``: a scheduler creates the runs of every date since the start date;
                               default off: only the latest interval, past dates are for backfills
``SEGMENTS_WAIT_TIMEOUT_HOURS`` how long a run waits for a raw partition's ``_SUCCESS`` (default 12)
``SEGMENTS_TASK_TIMEOUT_HOURS`` execution timeout of the daily chain and of training's features (default 3)
``SEGMENTS_TRAIN_TIMEOUT_HOURS`` execution timeout of the training task (default 8)
``SEGMENTS_LATE_AFTER_HOURS``  a daily run not finished this long after its day ended is late (default 6)
``SEGMENTS_ALERT_WEBHOOK``,    where alerts go (``app/alerts.py``); neither set: no alerts, no callbacks
``SEGMENTS_ALERT_EMAIL``
=============================  ===========================================================================
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import datetime, timedelta, timezone

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.providers.standard.triggers.external_task import WorkflowTrigger
from airflow.providers.standard.triggers.file import FileTrigger
from airflow.sdk import Asset, BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
)

from app.chain import Stage
from core import settings as settings_mod
from core import warehouse
from core.settings import REPO_ROOT

SETTINGS = settings_mod.load()
JOB_PYTHON = str(SETTINGS.job_python)
SEGMENTS_CLI = str(SETTINGS.job_bin / "segments")
SPARK_APPLICATION = str(REPO_ROOT / "app" / "spark_submit_main.py")
DS = "{{ ds }}"
# A long-lived Spark driver that Spark stages use when this connection exists (SparkConnectHook's default).
SPARK_CONNECT_CONN_ID = "spark_connect_default"


def _hours(name: str, default: float, low: float = 0.0) -> timedelta:
    value = os.environ.get(name, "").strip() or str(default)
    try:
        hours = float(value)
    except ValueError:
        hours = float("nan")
    if not hours >= low:  # also false for nan
        raise ValueError(f"{name} must be a number of hours >= {low:g}, got {value!r}")
    return timedelta(hours=hours)


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value in ("1", "true", "yes", "on")


START_DATE = datetime.fromisoformat(os.environ.get("SEGMENTS_START_DATE", "2026-01-01")).replace(
    tzinfo=timezone.utc
)
CATCHUP = _flag("SEGMENTS_CATCHUP", False)
WAIT_TIMEOUT = _hours("SEGMENTS_WAIT_TIMEOUT_HOURS", 12)
TASK_TIMEOUT = _hours("SEGMENTS_TASK_TIMEOUT_HOURS", 3)
TRAIN_TIMEOUT = _hours("SEGMENTS_TRAIN_TIMEOUT_HOURS", 8)
LATE_AFTER = _hours("SEGMENTS_LATE_AFTER_HOURS", 6)
# Airflow's own limit on a deferred wait, behind the wait's deadline (which names what is missing).
WAIT_MARGIN = timedelta(minutes=10)

# Partitions of these tables hold what arrived that UTC day: a run waits for each of the shop's. raw.users is
# an optional snapshot of customer attributes: a day without one reads the latest before it: not waited for.
ARRIVAL_TABLES = ("raw.events", "raw.orders")
WAITED_TABLES = tuple(t for t in SETTINGS.raw_tables if t in ARRIVAL_TABLES)

# The Airflow pool (1 slot) of the tasks that write a date's partitions: the daily chain and training's
# features never run at the same time (a date's features rewrite user_daily partitions of the days before).
WRITER_POOL = "segments_writer"
GATE_REJECTED = 3  # exit code of `segments` when a data-quality gate rejected the input
DAILY_DAG_ID = "segment_users_daily"

ALERT_VARIABLES = ("SEGMENTS_ALERT_WEBHOOK", "SEGMENTS_ALERT_EMAIL")


def alerts_configured() -> bool:
    return any(os.environ.get(name, "").strip() for name in ALERT_VARIABLES)


def failure_callbacks() -> list:
    """The notifier of a task that failed for good, when an alert destination is configured; else none."""
    if not alerts_configured():
        return []
    from app.alerts import SegmentsNotifier  # Airflow environment only

    return [SegmentsNotifier()]


def late_run_deadline():
    """A DeadlineAlert: the daily run of ds is late when it has not succeeded LATE_AFTER after its data
    interval [ds, ds + 1 day) ended. None without an alert destination."""
    if not alerts_configured():
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from app.alerts import SegmentsNotifier

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=timedelta(days=1) + LATE_AFTER,
        callback=AsyncCallback(SegmentsNotifier,
                               kwargs={"event": "late", "late_after_hours": LATE_AFTER / timedelta(hours=1)}),
        name="daily run late",
    )


DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
    "depends_on_past": False,
    "execution_timeout": TASK_TIMEOUT,
    "on_failure_callback": failure_callbacks(),
}


def table_asset(table_name: str):
    """The Airflow Asset for a warehouse table, so consumers can be scheduled on it."""
    layer, short = table_name.split(".")
    return Asset(name=table_name, uri=f"file://{SETTINGS.warehouse}/{layer}/{short}")


# What BI tools read: consumers (exports, dashboards refreshes) can be scheduled on it.
BI_SEGMENTS = Asset(name="bi.segments", uri="bi://serving/segments")


def asset(name: str):
    """The Airflow Asset a stage publishes: a warehouse table, or the BI tables."""
    return BI_SEGMENTS if name == BI_SEGMENTS.name else table_asset(name)


def chain_outlets(chain: tuple[Stage, ...]) -> list:
    """The Assets of every table the stages of ``chain`` publish, in chain order."""
    return [asset(stage.outlet) for stage in chain if stage.outlet]


# --- exit codes -------------------------------------------------------------------------------------------
_ERROR_LINE = re.compile(r"^error: .*$", re.MULTILINE)
_EXIT_CODE = re.compile(r"(?:Error code is|Kubernetes spark exit code is): (-?\d+)")


def error_line(text: str) -> str | None:
    """The last ``error: ...`` line the ``segments`` command printed, if ``text`` holds one."""
    found = _ERROR_LINE.findall(text or "")
    return found[-1].strip() if found else None


def fail_for_exit(code: int, error: str | None, what: str) -> None:
    """Raise the task's failure for a command that exited with ``code`` (not 0)."""
    if code == GATE_REJECTED:
        raise AirflowFailException(
            f"{error or 'error: a data-quality gate rejected the input'} "
            f"({what} exited with {GATE_REJECTED}: a data-quality gate rejected the input; not retried: "
            "fix or reload the data, then clear the task)")
    raise AirflowException(f"{error or 'error: the command failed'} ({what} exited with {code})")


def spark_connect_url() -> str | None:
    """The Spark Connect endpoint of the connection ``spark_connect_default`` (``make up`` defines it), or None
    when there is no such connection."""
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

    try:
        return SparkConnectHook(SPARK_CONNECT_CONN_ID).get_connection_url()
    except AirflowNotFoundException:
        return None


def run_segments(operator: BaseOperator, arguments: list[str], env: dict[str, str], what: str) -> None:
    """Run the job environment's ``segments`` with ``arguments`` (no shell), its output in the task log; the
    process is ``operator._process`` (for ``on_kill``). A non-zero exit raises the task's failure."""
    command = [SEGMENTS_CLI, *arguments]
    env = os.environ | {"SEGMENTS_HOME": str(SETTINGS.home), "TF_CPP_MIN_LOG_LEVEL": "2"} | env
    operator.log.info("running %s", " ".join(command))
    process = operator._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                   text=True, errors="replace", env=env, start_new_session=True)
    last_error = None
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.rstrip("\n")
        operator.log.info("%s", line)
        last_error = error_line(line) or last_error
    code = process.wait()
    if code:
        fail_for_exit(code, last_error, what)


def stop_process(process: subprocess.Popen | None) -> bool:
    """TERM the process group of a running ``segments`` command; whether there was one."""
    if process is None or process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGTERM)
    return True


class SegmentsSparkSubmit(SparkSubmitOperator):
    """A Spark stage: ``segments <application_args>``. Exit code 3 (a gate rejected the input) fails the task
    for good.

    With a Spark Connect endpoint (the connection ``spark_connect_default``) the job environment's
    ``segments`` command runs as a client of that long-lived Spark driver: no JVM starts for the task. Else
    spark-submit through ``spark_default``; the hook reports a failed submit as ``AirflowException("Cannot
    execute: <command>. Error code is: N." + the last lines of its output)``: the code and the command's
    ``error:`` line are read from it. In Kubernetes cluster mode it adds the driver's own code (``Kubernetes
    spark exit code is: N``), which wins.
    """

    _process: subprocess.Popen | None = None

    def execute(self, context):
        remote = spark_connect_url()
        if remote:
            self.log.info("Spark Connect endpoint of %s: %s", SPARK_CONNECT_CONN_ID, remote.split(";")[0])
            return run_segments(self, [str(a) for a in self.application_args], {"SEGMENTS_SPARK_REMOTE": remote},
                                f"segments {self.application_args[1]} (Spark Connect)")
        try:
            return super().execute(context)
        except AirflowException as exc:
            text = str(exc)
            codes = [int(c) for c in _EXIT_CODE.findall(text)]
            if not codes:
                raise
            fail_for_exit(codes[-1] or codes[0], error_line(text), "spark-submit of segments")

    def on_kill(self) -> None:
        if not stop_process(self._process):
            super().on_kill()


class SegmentsCommand(BaseOperator):
    """The job environment's ``segments`` command with ``arguments`` (templated), run without a shell: its
    output goes to the task log; exit code 3 fails the task for good, another non-zero code is retried."""

    template_fields = ("arguments",)
    ui_color = "#e8f0e8"

    def __init__(self, *, arguments: list[str], **kwargs):
        super().__init__(**kwargs)
        self.arguments = arguments
        self._process: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [SEGMENTS_CLI, "--quiet", *(str(a) for a in self.arguments)]

    def execute(self, context) -> None:
        run_segments(self, self.command[1:], {}, f"segments {self.arguments[0]}")

    def on_kill(self) -> None:
        stop_process(self._process)


def spark_stage(task_id: str, *args: str, outlets: list | None = None, **kwargs) -> SegmentsSparkSubmit:
    """A Spark stage: ``segments <args>`` submitted with spark-submit of the job environment."""
    return SegmentsSparkSubmit(
        task_id=task_id,
        application=SPARK_APPLICATION,
        application_args=["--quiet", *args],
        conn_id="spark_default",
        name=f"segments-{task_id}",
        driver_memory=SETTINGS.spark_driver_memory,
        conf={
            "spark.pyspark.python": JOB_PYTHON,
            "spark.pyspark.driver.python": JOB_PYTHON,
            "spark.sql.session.timeZone": "UTC",
            "spark.executor.memory": SETTINGS.spark_executor_memory,
            **({"spark.driver.extraJavaOptions": SETTINGS.spark_java_options}
               if SETTINGS.spark_java_options else {}),
        },
        # The job env's spark-submit comes first on PATH; its Python runs the driver and workers.
        env_vars={
            "PATH": f"{SETTINGS.job_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYSPARK_PYTHON": JOB_PYTHON,
            "PYSPARK_DRIVER_PYTHON": JOB_PYTHON,
            "SEGMENTS_HOME": str(SETTINGS.home),
        },
        outlets=outlets or [],
        **kwargs,
    )


def cli_stage(task_id: str, *args: str, outlets: list | None = None, **kwargs) -> SegmentsCommand:
    """A non-Spark stage (training, its gate): the job environment's ``segments`` command."""
    return SegmentsCommand(task_id=task_id, arguments=list(args), outlets=outlets or [], **kwargs)


# --- waits ------------------------------------------------------------------------------------------------
def _wait_args(kwargs: dict) -> dict:
    """Sensors: their own timeout, no retries (a wait that timed out would only wait again), deferred between
    pokes (no worker slot held), and an execution timeout behind the wait's deadline."""
    timeout = WAIT_TIMEOUT.total_seconds()
    return {"timeout": timeout, "poke_interval": min(60.0, max(1.0, timeout / 20)), "retries": 0,
            "execution_timeout": WAIT_TIMEOUT + WAIT_MARGIN, **kwargs}


def _hours_text(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 360 else f"{seconds:g} s"


class RawPartitionSensor(BaseSensorOperator):
    """Waits for the completeness signal of one raw partition, ``<warehouse>/raw/<table>/ds=<ds>/_SUCCESS``
    (``segments ingest`` and ``segments seed`` write it last), deferred to the triggerer between pokes.

    Timing out fails the task, naming the table, the ds and the file.
    """

    template_fields = ("ds",)
    ui_color = "#f0e8d8"

    def __init__(self, *, table: str, ds: str = DS, **kwargs):
        super().__init__(**_wait_args(kwargs))
        self.table = table
        self.ds = ds

    @property
    def marker(self) -> str:
        return os.path.join(warehouse.partition_path(self.table, self.ds), warehouse.SUCCESS_MARKER)

    def poke(self, context) -> bool:
        return os.path.isfile(self.marker)

    def execute(self, context) -> None:
        if self.poke(context):
            self.log.info("%s ds=%s is complete: %s", self.table, self.ds, self.marker)
            return
        from app.triggers import WithDeadline

        self.log.info("waiting up to %s for %s", _hours_text(self.timeout), self.marker)
        self.defer(
            trigger=WithDeadline.wrap(
                FileTrigger(filepath=self.marker, poke_interval=self.poke_interval),
                deadline=datetime.now(timezone.utc) + timedelta(seconds=self.timeout),
                about={"table": self.table, "ds": self.ds, "path": self.marker}),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + WAIT_MARGIN,
        )

    def execute_complete(self, context, event=None) -> None:
        if event is True or self.poke(context):
            self.log.info("%s ds=%s is complete: %s", self.table, self.ds, self.marker)
            return
        raise AirflowSensorTimeout(
            f"{self.table} ds={self.ds} has not arrived: no {warehouse.SUCCESS_MARKER} at {self.marker} "
            f"after {_hours_text(self.timeout)} (SEGMENTS_WAIT_TIMEOUT_HOURS); land it (segments ingest), "
            "then clear the run")


def _day_start(logical_date: datetime, **_) -> datetime:
    """The daily run of the same ds: scheduled and backfilled daily runs have logical date ds 00:00 UTC."""
    return logical_date.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


class DailyRunSensor(ExternalTaskSensor):
    """Waits, deferred, for the daily DAG's run of the same ds to succeed; fails at once if it failed.

    Pokes once before deferring (the provider's deferrable sensor always defers), and defers through
    ``WithDeadline`` so that the timeout also holds under ``airflow dags test``.
    """

    def __init__(self, **kwargs):
        super().__init__(**_wait_args({"external_dag_id": DAILY_DAG_ID, "allowed_states": ["success"],
                                       "failed_states": ["failed"], "execution_date_fn": _day_start,
                                       "deferrable": True, **kwargs}))

    def execute(self, context) -> None:
        if self.poke(context):
            self.log.info("the %s run of %s has succeeded", self.external_dag_id, context["ds"])
            return
        from app.triggers import WithDeadline

        dates = list(self._get_dttm_filter(context))
        inner = WorkflowTrigger(external_dag_id=self.external_dag_id, allowed_states=self.allowed_states,
                                failed_states=self.failed_states, skipped_states=self.skipped_states,
                                poke_interval=self.poke_interval, logical_dates=dates, run_ids=None,
                                execution_dates=None)
        self.log.info("waiting up to %s for the %s run of %s", _hours_text(self.timeout),
                      self.external_dag_id, context["ds"])
        deadline = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        self.defer(
            trigger=WithDeadline.wrap(inner, deadline,
                                      about={"dag": self.external_dag_id, "ds": context["ds"]}),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + WAIT_MARGIN,
        )

    def execute_complete(self, context, event=None) -> None:
        if isinstance(event, dict) and event.get("status") == "timeout":
            raise AirflowSensorTimeout(
                f"the {self.external_dag_id} run of ds={context['ds']} has not succeeded after "
                f"{_hours_text(self.timeout)} (SEGMENTS_WAIT_TIMEOUT_HOURS): training waits for it so that "
                "the two never write the same partitions")
        super().execute_complete(context, event)
