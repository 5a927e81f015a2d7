from pathlib import Path

import pytest

from core import settings


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
    # ... unless `make up` runs a stack for var/: its stack.env is then the default (not under test here).
    monkeypatch.setattr(settings, "stack_defaults", lambda home=None: {})
    s = settings.load()
    assert s.home == settings.REPO_ROOT / "var"
    assert s.spark_master == "local[2]" and s.n_segments == 6


def test_spark_profile_standard_is_the_jvm_default_and_options_override_it(monkeypatch):
    monkeypatch.delenv("SEGMENTS_SPARK_JAVA_OPTIONS", raising=False)
    monkeypatch.delenv("SEGMENTS_SPARK_PROFILE", raising=False)
    # Production default: no JVM tuning unless a profile asks for it.
    assert settings.load().spark_java_options == ""
    monkeypatch.setenv("SEGMENTS_SPARK_PROFILE", "small-machine")
    assert settings.load().spark_java_options == "-XX:+UseParallelGC -XX:MaxNodeLimit=30000"
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", " -XX:+UseG1GC ")  # replaces the profile's options
    assert settings.load().spark_java_options == "-XX:+UseG1GC"
    monkeypatch.setenv("SEGMENTS_SPARK_JAVA_OPTIONS", "")  # set but empty: the JVM's own defaults
    assert settings.load().spark_java_options == ""


def test_unknown_spark_profile_is_a_bad_setting(monkeypatch):
    monkeypatch.setenv("SEGMENTS_SPARK_PROFILE", "huge")
    with pytest.raises(settings.BadSetting, match="SEGMENTS_SPARK_PROFILE"):
        settings.load()


def test_airflow_environment_is_low_parallelism_and_local_spark(platform_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT", raising=False)
    env = settings.airflow_environment()
    assert env["AIRFLOW_HOME"] == str(platform_home.resolve() / "airflow")
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert '"host": "local[2]"' in env["AIRFLOW_CONN_SPARK_DEFAULT"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")


def test_raw_tables_name_the_shop_profile_and_its_teacher(monkeypatch):
    monkeypatch.delenv("SEGMENTS_SEGMENT_METHOD", raising=False)
    monkeypatch.setenv("SEGMENTS_RAW_TABLES", "users, orders")  # short names, any order: contract order back
    s = settings.load()
    assert s.raw_tables == ("raw.orders", "raw.users") and s.segment_method == "rfm_kmeans"
    monkeypatch.setenv("SEGMENTS_RAW_TABLES", "raw.events")
    assert settings.load().segment_method == "sequence_kmeans"
    monkeypatch.setenv("SEGMENTS_SEGMENT_METHOD", "feature_kmeans")  # an explicit method wins
    assert settings.load().segment_method == "feature_kmeans"
    for bad in ("raw.users", "raw.events,raw.clicks"):  # no activity table; an unknown table
        monkeypatch.setenv("SEGMENTS_RAW_TABLES", bad)
        with pytest.raises(settings.BadSetting, match="SEGMENTS_RAW_TABLES"):
            settings.load()


def test_spark_remote_is_a_spark_connect_url_or_empty(platform_home, monkeypatch):
    monkeypatch.setenv("SEGMENTS_SPARK_REMOTE", "spark://127.0.0.1:7077")  # a master, not a Connect server
    with pytest.raises(settings.BadSetting, match="SEGMENTS_SPARK_REMOTE"):
        settings.load()
    monkeypatch.setenv("SEGMENTS_SPARK_REMOTE", "")  # set and empty: no remote (a driver of the job's own)
    assert settings.load().spark_remote == ""
    monkeypatch.setenv("SEGMENTS_SPARK_REMOTE", " sc://connect.internal:15003 ")
    assert settings.load().spark_remote == "sc://connect.internal:15003"


def test_airflow_environment_derives_spark_connect_default_from_spark_remote(platform_home, monkeypatch):
    import json

    monkeypatch.delenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", raising=False)
    monkeypatch.delenv("SEGMENTS_SPARK_REMOTE", raising=False)
    assert "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT" not in settings.airflow_environment()  # spark-submit then
    monkeypatch.setenv("SEGMENTS_SPARK_REMOTE", "sc://connect.internal:15003")
    assert json.loads(settings.airflow_environment()["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"]) == \
        {"conn_type": "spark_connect", "host": "connect.internal", "port": 15003}
    mine = '{"conn_type": "spark_connect", "host": "elsewhere", "port": 15002}'
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", mine)  # a connection set in the environment wins
    assert settings.airflow_environment()["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"] == mine


@pytest.mark.parametrize("remote, connection", [
    ("sc://127.0.0.1:15002", {"host": "127.0.0.1", "port": 15002}),
    ("sc://connect.internal", {"host": "connect.internal", "port": 15002}),  # Spark Connect's default port
    ("sc://h:443/;use_ssl=true;token=a%2Fb;user_id=me",
     {"host": "h", "port": 443, "login": "me", "password": "a/b", "extra": {"use_ssl": "true"}}),
])
def test_spark_connect_connection_keeps_what_the_hook_turns_back_into_the_url(remote, connection):
    import json

    expected = {"conn_type": "spark_connect", **connection}
    assert json.loads(settings.spark_connect_connection(remote)) == expected
