from pathlib import Path

from segments import settings


def test_segments_home_alone_moves_every_location(platform_home):
    s = settings.load()
    assert s.home == platform_home.resolve()
    for location in (s.warehouse, s.mlflow_artifact_root, str(s.airflow_home), s.bi_url, str(s.gx_dir)):
        assert Path(location).is_relative_to(platform_home), location
    assert s.mlflow_tracking_uri == f"sqlite:///{platform_home.resolve()}/mlflow/mlflow.db"
    assert not s.bi_is_postgres


def test_each_location_overridable(platform_home, monkeypatch):
    monkeypatch.setenv("SEGMENTS_BI_URL", "postgresql://bi@db.internal:5432/analytics")
    monkeypatch.setenv("SEGMENTS_SPARK_MASTER", "spark://spark-master:7077")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = settings.load()
    assert s.bi_is_postgres
    assert s.spark_master == "spark://spark-master:7077"
    assert s.mlflow_tracking_uri == "http://mlflow:5000"


def test_defaults_are_embedded(monkeypatch):
    for var in ("SEGMENTS_HOME", "SEGMENTS_SPARK_MASTER", "SEGMENTS_N_SEGMENTS"):
        monkeypatch.delenv(var, raising=False)
    s = settings.load()
    assert s.home == settings.REPO_ROOT / "var"
    assert s.spark_master == "local[2]" and s.n_segments == 6


def test_spark_java_options_default_override_and_empty(monkeypatch):
    monkeypatch.delenv("SEGMENTS_SPARK_JAVA_OPTIONS", raising=False)
    assert settings.load().spark_java_options == settings.DEFAULT_SPARK_JAVA_OPTIONS
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", " -XX:+UseG1GC ")
    assert settings.load().spark_java_options == "-XX:+UseG1GC"
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", "")  # set but empty: the JVM's own defaults
    assert settings.load().spark_java_options == ""


def test_class_archive_joins_the_driver_options_once_it_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGMENTS_SPARK_JAVA_OPTIONS", raising=False)
    monkeypatch.delenv("SEGMENTS_SPARK_CLASS_ARCHIVE", raising=False)
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path / "home"))
    # One archive per checkout (it belongs to the JDK and the job environment), whatever SEGMENTS_HOME is.
    assert settings.load().spark_class_archive == settings.REPO_ROOT / "var" / "jvm" / "spark-classes.jsa"

    archive = tmp_path / "jvm dir" / "classes.jsa"
    monkeypatch.setenv("SEGMENTS_SPARK_CLASS_ARCHIVE", str(archive))
    # Not built yet: no option, since a JVM pointed at a missing archive also drops the JDK's own one.
    assert settings.load().driver_java_options == settings.DEFAULT_SPARK_JAVA_OPTIONS
    archive.parent.mkdir()
    archive.write_bytes(b"built")
    # The path holds a space: quoted, as Spark splits the options like a shell.
    assert settings.load().driver_java_options == (
        f'{settings.DEFAULT_SPARK_JAVA_OPTIONS} -XX:SharedArchiveFile="{archive}"')
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", "")
    assert settings.load().driver_java_options == f'-XX:SharedArchiveFile="{archive}"'

    monkeypatch.setenv("SEGMENTS_SPARK_CLASS_ARCHIVE", "")  # set but empty: never use one
    s = settings.load()
    assert s.spark_class_archive is None and s.driver_java_options == ""


def test_airflow_environment_is_low_parallelism_and_local_spark(platform_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT", raising=False)
    env = settings.airflow_environment()
    assert env["AIRFLOW_HOME"] == str(platform_home.resolve() / "airflow")
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert '"host": "local[2]"' in env["AIRFLOW_CONN_SPARK_DEFAULT"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
