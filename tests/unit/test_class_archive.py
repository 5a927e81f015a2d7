from pathlib import Path

from jobs import class_archive
from segments import settings


def test_the_training_run_never_touches_the_configured_platform(tmp_path, monkeypatch):
    # A production setup: every location, the master and the JVM options point elsewhere.
    for key in class_archive.LOCATION_VARIABLES:
        monkeypatch.setenv(key, f"/platform/{key.lower()}")
    monkeypatch.setenv("SEGMENTS_SPARK_MASTER", "spark://spark-master:7077")
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", "-XX:+UseG1GC")
    home, archive = tmp_path / "home", tmp_path / "classes.jsa"
    env = class_archive.training_environment(home, archive)
    assert not set(class_archive.LOCATION_VARIABLES) & set(env)

    with monkeypatch.context() as mp:  # the settings the child process reads
        for key in class_archive.LOCATION_VARIABLES:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        s = settings.load()
    for location in (s.warehouse, s.mlflow_artifact_root, str(s.airflow_home), s.bi_url, str(s.gx_dir)):
        assert Path(location).is_relative_to(home), location
    assert s.mlflow_tracking_uri == f"sqlite:///{home}/mlflow/mlflow.db"
    assert s.spark_master == "local[2]"
    # The configured JVM options plus the dump; no archive mapped while one is written.
    assert s.spark_java_options == f"-XX:+UseG1GC -XX:ArchiveClassesAtExit={archive}"
    assert s.spark_class_archive is None
