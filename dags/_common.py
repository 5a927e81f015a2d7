"""Task factories shared by the DAGs. Orchestration only: nothing here imports jobs/ or ml/.

Spark stages run as spark-submit of ``app/spark_submit_main.py`` with the job environment's Spark
(master from the ``spark_default`` connection, ``local[2]`` by default); ML and publish stages run the
job environment's ``segments`` command. Only stdlib modules (settings, the chain) are read at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset

from app.chain import Stage
from core import settings as settings_mod
from core.settings import REPO_ROOT

SETTINGS = settings_mod.load()
JOB_PYTHON = str(SETTINGS.job_python)
SEGMENTS_CLI = str(SETTINGS.job_bin / "segments")
SPARK_APPLICATION = str(REPO_ROOT / "app" / "spark_submit_main.py")
DS = "{{ ds }}"
START_DATE = datetime.fromisoformat(os.environ.get("SEGMENTS_START_DATE", "2026-01-01")).replace(
    tzinfo=timezone.utc
)

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "depends_on_past": False,
}


def table_asset(table_name: str) -> Asset:
    """The Airflow Asset for a warehouse table, so consumers can be scheduled on it."""
    layer, short = table_name.split(".")
    return Asset(name=table_name, uri=f"file://{SETTINGS.warehouse}/{layer}/{short}")


# What BI tools read: consumers (exports, dashboards refreshes) can be scheduled on it.
BI_SEGMENTS = Asset(name="bi.segments", uri="bi://serving/segments")


def spark_stage(task_id: str, *args: str, outlets: list[Asset] | None = None) -> SparkSubmitOperator:
    """A Spark stage: ``segments <args>`` submitted with spark-submit of the job environment."""
    return SparkSubmitOperator(
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
    )


def cli_stage(task_id: str, *args: str, outlets: list[Asset] | None = None) -> BashOperator:
    """A non-Spark stage (training, publishing): the job environment's ``segments`` command."""
    command = " ".join([SEGMENTS_CLI, "--quiet", *args])
    return BashOperator(
        task_id=task_id,
        bash_command=command,
        env={"SEGMENTS_HOME": str(SETTINGS.home), "TF_CPP_MIN_LOG_LEVEL": "2"},
        append_env=True,
        outlets=outlets or [],
    )


def asset(name: str) -> Asset:
    """The Airflow Asset a stage publishes: a warehouse table, or the BI tables."""
    return BI_SEGMENTS if name == BI_SEGMENTS.name else table_asset(name)


def stage_task(stage: Stage) -> SparkSubmitOperator | BashOperator:
    """The task of one stage of ``app/chain.py`` for the run's logical date."""
    factory = spark_stage if stage.spark else cli_stage
    return factory(stage.task_id, *stage.args(DS), outlets=[asset(stage.outlet)] if stage.outlet else None)
