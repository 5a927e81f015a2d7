"""The Spark driver's class archive (jobs/class_archive.py): built by a real training run, then mapped by
the next driver JVM. A real JDK and real Spark: nothing is mocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import class_archive
from segments import settings

pytestmark = pytest.mark.spark


def _class_sources(log: Path, package: str) -> dict[str, int]:
    """How many classes of ``package`` the JVM loaded from the archive and from jar files, from its
    ``-Xlog:class+load`` lines ("<class> source: shared objects file (top)" / "source: file:/...jar")."""
    counts = {"archive": 0, "jar": 0}
    for line in log.read_text().splitlines():
        name, _, source = line.partition(" source: ")
        if not name.rsplit("] ", 1)[-1].startswith(package):
            continue
        if source == "shared objects file (top)":  # "(top)": the dynamic archive, over the JDK's own
            counts["archive"] += 1
        elif source.startswith(("file:", "jar:")):
            counts["jar"] += 1
    return counts


def _start_driver(tmp_path: Path, archive: str, name: str) -> dict[str, int]:
    """A new driver JVM (its own process, as every job is) that runs one query; where its Spark classes
    came from."""
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "SEGMENTS_HOME": str(tmp_path / "home"), "SEGMENTS_SPARK_CLASS_ARCHIVE": archive,
           "SEGMENTS_SPARK_JAVA_OPTIONS": f"{settings.DEFAULT_SPARK_JAVA_OPTIONS} "
                                          f"-Xlog:class+load=info:file={log}"}
    query = "from jobs.session import build_spark; print(build_spark().range(5).count())"
    out = subprocess.run([sys.executable, "-c", query], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("5")
    return _class_sources(log, "org.apache.spark.")


def test_the_archive_of_a_training_run_serves_the_next_driver_its_spark_classes(tmp_path):
    archive = tmp_path / "jvm" / "classes.jsa"
    summary = class_archive.build(archive, tmp_path / "build.log")
    assert archive.is_file() and summary.size_bytes == archive.stat().st_size
    assert [p.name for p in archive.parent.iterdir()] == ["classes.jsa"]  # no training leftovers

    with_archive = _start_driver(tmp_path, str(archive), "with")
    without = _start_driver(tmp_path, "", "without")
    # Without the archive every Spark class comes from the jars. With it, all but the few this query
    # needs and the feature runs did not (a classpath the JVM found different would give 0 here).
    assert without["archive"] == 0 and without["jar"] > 3000
    assert with_archive["archive"] > 0.95 * without["jar"]
    assert with_archive["jar"] < 0.05 * without["jar"]


def test_a_failed_training_run_leaves_the_archive_in_place(tmp_path, monkeypatch):
    archive = tmp_path / "classes.jsa"
    archive.write_bytes(b"the archive of an earlier build")
    # Java options that spark-submit refuses (it takes the heap from the driver memory setting only; an
    # unknown -XX option would not do: Spark adds -XX:+IgnoreUnrecognizedVMOptions): no driver starts.
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", "-Xmx1g")
    with pytest.raises(class_archive.ClassArchiveError, match="build.log"):
        class_archive.build(archive, tmp_path / "build.log")
    assert archive.read_bytes() == b"the archive of an earlier build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.log", "classes.jsa"]  # no leftovers
    assert "JAVA_GATEWAY_EXITED" in (tmp_path / "build.log").read_text()
