"""jobs/session.py: the SparkSession the tests (and every job) run on."""

from __future__ import annotations

import pytest

from core import settings


@pytest.mark.spark
def test_session_time_zone_is_utc(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


@pytest.mark.spark
def test_session_jvm_runs_with_the_configured_java_options(spark):
    options = set(settings.load().spark_java_options.split())
    if not options:  # the empty set is in any JVM's arguments: nothing to check, and the report says so
        pytest.skip("no JVM options configured (the 'standard' profile); `make test` selects 'small-machine'")
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert options <= set(runtime.getInputArguments())
