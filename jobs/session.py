"""The one place that builds a SparkSession."""

from __future__ import annotations

import atexit
import os
import socket
import sys

from pyspark.sql import SparkSession

from core import settings as settings_mod
from core.errors import PlatformError

_CONNECT_TIMEOUT_S = 5


class SparkUnreachable(PlatformError):
    hint = ("start it (`make up` starts the stack's; `make status` checks it), or set SEGMENTS_SPARK_REMOTE= "
            "(empty) to run Spark in this process")


def _session_conf(s: settings_mod.Settings) -> dict[str, str]:
    """Settings of every session, local or remote (a Spark Connect session takes them per client)."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.shuffle.partitions": str(s.spark_shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        # AQE replaces a plan whose shuffle turned out empty by an empty relation, and the `observe` in it
        # (the runner's cleaning counters) then reports no metrics at all: a run whose rows were all
        # quarantined failed with an AssertionError instead of logging zeros.
        "spark.sql.adaptive.optimizer.excludedRules":
            "org.apache.spark.sql.execution.adaptive.AQEPropagateEmptyRelation",
        # List a table's partition directories on the driver: above the default threshold (32 paths) Spark
        # runs a listing job for every table read (~1-2 s each, several per run), slower than listing a few
        # hundred local or HDFS directories directly.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def build_spark(app_name: str = "segments") -> SparkSession:
    """Build (or reuse) the session.

    With ``SEGMENTS_SPARK_REMOTE`` (a Spark Connect URL, the stack's by default while it is up) a client
    session of that long-lived driver: no JVM starts here. Else a driver in this process: under spark-submit
    the master and resources come from the submit command (Airflow's Spark connection); run directly, from
    ``SEGMENTS_SPARK_MASTER``. Python workers must run this interpreter (the job env), or they start the
    system python and fail on imports.
    """
    s = settings_mod.load()
    if s.spark_remote:
        return _connect(s, app_name)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in _session_conf(s).items():
        builder = builder.config(key, value)
    builder = (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Keep Spark's own warehouse dir out of the working directory.
        .config("spark.sql.warehouse.dir", str(s.home / "tmp" / "spark-warehouse"))
    )
    # spark-submit starts the JVM first and hands Python its gateway; then the submit command
    # (Airflow's Spark connection and the DAG's conf) owns master, memory and JVM options.
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):
        builder = (builder.master(s.spark_master).config("spark.driver.memory", s.spark_driver_memory)
                   .config("spark.executor.memory", s.spark_executor_memory))
        if s.spark_java_options:
            builder = builder.config("spark.driver.extraJavaOptions", s.spark_java_options)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _connect(s: settings_mod.Settings, app_name: str) -> SparkSession:
    """A Spark Connect session of ``s.spark_remote``, released when this process exits (the server then drops
    its cached data and shipped files)."""
    host, port = settings_mod.spark_connect_address(s.spark_remote)
    try:  # first a plain TCP check: the client itself retries an unreachable server for ~10 minutes
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise SparkUnreachable(f"Spark Connect server {s.spark_remote} is unreachable "
                               f"({exc.strerror or exc})") from None
    builder = SparkSession.builder.remote(s.spark_remote).appName(app_name)
    for key, value in _session_conf(s).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    atexit.register(spark.stop)
    return spark


def is_remote(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no SparkContext in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def default_parallelism(spark: SparkSession) -> int:
    """Tasks that keep every core busy: the SparkContext's default parallelism, or for a Spark Connect
    session the server's ``spark.default.parallelism`` (the stack sets it to its worker's cores), else 2."""
    if not is_remote(spark):
        return spark.sparkContext.defaultParallelism
    return int(spark.conf.get("spark.default.parallelism", None) or 2)
