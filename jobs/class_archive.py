"""The Spark driver's class archive: the JVM classes a feature run loads, stored once, mapped by every job.

Each Spark job here is a fresh driver JVM (in local mode, the whole of Spark) that loads, parses and
verifies about 17,000 classes (the JDK's, Spark, Scala, Hadoop, Parquet) by its first query, and more
during the run: seconds of every job, spent on the same classes every day. The JVM's class data sharing
(dynamic AppCDS, JDK 13+) stores the loaded classes in an archive when one run ends
(``-XX:ArchiveClassesAtExit``); later JVMs map it (``-XX:SharedArchiveFile``) instead of loading the
classes again.

``build`` makes the archive from a training run: a feature run for two dates (from scratch, then the
incremental daily path) on a small throwaway synthetic warehouse, in a child process whose JVM writes
the archive when it exits. ``make install`` runs it once (``segments class-archive``); the driver uses
the archive while the file exists (``Settings.driver_java_options``). The JVM checks the archive against
its own build and class path: after a JDK or pyspark upgrade it ignores a stale archive with a
``[warning][cds]`` line, and the job runs as it would without one; run ``segments class-archive`` again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from segments import settings as settings_mod
from segments.errors import PlatformError

# The training warehouse: enough rows for every code path of a feature run (late rows, quarantine,
# orders, categories), small enough that the run is mostly the JVM's fixed costs.
TRAINING_USERS = 300
TRAINING_DAYS = 6
TRAINING_END = "2026-06-30"
# Locations that would point the training run at a real platform instead of its own SEGMENTS_HOME.
LOCATION_VARIABLES = ("SEGMENTS_WAREHOUSE", "SEGMENTS_BI_URL", "MLFLOW_TRACKING_URI",
                      "SEGMENTS_MLFLOW_ARTIFACTS", "AIRFLOW_HOME", "SEGMENTS_GX_DIR")


class ClassArchiveError(PlatformError, RuntimeError):
    """The training run did not produce an archive."""

    hint = "the training run's output is in the log file named above; jobs still run without the archive"


@dataclass(frozen=True)
class ArchiveSummary:
    path: Path
    size_bytes: int


def training_environment(home: Path, archive: Path) -> dict[str, str]:
    """The child's environment: a throwaway platform under ``home`` (never the configured warehouse),
    local Spark, the archive written at exit and none mapped (a dynamic archive is written on top of the
    JDK's own archive only)."""
    options = settings_mod.load().spark_java_options
    env = {key: value for key, value in os.environ.items() if key not in LOCATION_VARIABLES}
    return {
        **env,
        "SEGMENTS_HOME": str(home),
        "SEGMENTS_SPARK_MASTER": "local[2]",
        "SEGMENTS_SPARK_CLASS_ARCHIVE": "",
        "SEGMENTS_SPARK_JAVA_OPTIONS": f"{options} -XX:ArchiveClassesAtExit={archive}".strip(),
    }


def build(path: Path, log_path: Path) -> ArchiveSummary:
    """Run the training run in a child process and move its archive to ``path``: atomically (a job
    starting meanwhile maps the old archive or none, never half a file), from a temporary directory next
    to it, so on the same file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="class-archive-", dir=path.parent) as tmp:
        dumped = Path(tmp) / "classes.jsa"
        with open(log_path, "w") as log_file:
            child = subprocess.run([sys.executable, "-m", "jobs.class_archive", "--training-run"],
                                   env=training_environment(Path(tmp) / "home", dumped),
                                   stdout=log_file, stderr=subprocess.STDOUT, check=False)
        if child.returncode != 0 or not dumped.is_file():
            raise ClassArchiveError(f"the training run exited with {child.returncode} and "
                                    f"{'wrote' if dumped.is_file() else 'wrote no'} archive; see {log_path}")
        os.replace(dumped, path)
    return ArchiveSummary(path, path.stat().st_size)


def training_run() -> None:
    """Seed the training warehouse and build features for its last two dates in one JVM."""
    from jobs.build import build_features
    from jobs.dates import shift
    from jobs.session import build_spark
    from segments.synthetic import generate

    generate(users=TRAINING_USERS, days=TRAINING_DAYS, end_date=TRAINING_END, progress=False)
    spark = build_spark("segments-class-archive")
    jvm = spark.sparkContext._gateway.proc  # the driver JVM (spark-submit execs it)
    try:
        for ds in (shift(TRAINING_END, -1), TRAINING_END):
            summary = build_features(spark, ds)
            print(f"features ds={ds}: {summary.active_users} users, user_daily built "
                  f"{summary.daily_dates_built}", flush=True)
    finally:
        spark.stop()
        # The JVM exits when its stdin ends, and writes the archive then. Wait for it, also after a failure:
        # the parent takes the file once this process has exited, and the JVM would otherwise outlive it.
        jvm.stdin.close()
        jvm.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="internal: the training run of `segments class-archive`")
    parser.add_argument("--training-run", action="store_true", required=True)
    parser.parse_args()
    training_run()
