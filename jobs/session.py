"""The one place that builds a SparkSession."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from core import settings as settings_mod


def build_spark(app_name: str = "segments") -> SparkSession:
    """Build (or reuse) the session.

    Under spark-submit the master and resources come from the submit command (Airflow's Spark
    connection); run directly, the master comes from ``SEGMENTS_SPARK_MASTER``. Python workers must
    run this interpreter (the job env), or they start the system python and fail on imports.
    """
    s = settings_mod.load()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.shuffle.partitions", str(s.spark_shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        # AQE replaces a plan whose shuffle turned out empty by an empty relation, and the `observe` in it
        # (the runner's cleaning counters) then reports no metrics at all: a run whose rows were all
        # quarantined failed with an AssertionError instead of logging zeros.
        .config("spark.sql.adaptive.optimizer.excludedRules",
                "org.apache.spark.sql.execution.adaptive.AQEPropagateEmptyRelation")
        # List a table's partition directories on the driver: above the default threshold (32 paths) Spark
        # runs a listing job for every table read (~1-2 s each, several per run), slower than listing a few
        # hundred local or HDFS directories directly.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1024")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
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

