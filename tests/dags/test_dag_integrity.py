"""Every DAG parses without import errors, without touching a database, and is wired as designed."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app.chain import DAILY_CHAIN

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
# Settings of the DAGs read at parse time: each test parses with exactly the ones it sets.
DAG_SETTINGS = ("SEGMENTS_CATCHUP", "SEGMENTS_WAIT_TIMEOUT_HOURS", "SEGMENTS_TASK_TIMEOUT_HOURS",
                "SEGMENTS_TRAIN_TIMEOUT_HOURS", "SEGMENTS_LATE_AFTER_HOURS", "SEGMENTS_ALERT_WEBHOOK",
                "SEGMENTS_ALERT_EMAIL", "SEGMENTS_RAW_TABLES", "SEGMENTS_START_DATE", "SEGMENTS_TRAIN_EPOCHS",
                "SEGMENTS_SEED", "SEGMENTS_SEGMENT_METHOD")
SENSORS = {"wait_for_raw_events", "wait_for_raw_orders", "wait_for_daily_run"}


def parse(home: Path, **env: str):
    """A DagBag of dags/ parsed in this process with the settings ``env`` (and none of the others)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in DAG_SETTINGS:
            mp.delenv(key, raising=False)
        for key, value in {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                           "SEGMENTS_HOME": str(home / "platform"), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                           **env}.items():
            mp.setenv(key, value)
        mp.syspath_prepend(str(DAGS))  # Airflow puts the DAG folder on sys.path; _common.py relies on it
        sys.modules.pop("_common", None)  # its settings are read when it is imported
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAGS))
        sys.modules.pop("_common", None)
        return bag


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    return parse(tmp_path_factory.mktemp("airflow"))


@pytest.fixture(scope="module")
def daily(dagbag):
    return dagbag.dags["segment_users_daily"]


@pytest.fixture(scope="module")
def training(dagbag):
    return dagbag.dags["train_segmenter"]


def render(dag, task_id: str, conf: dict | None = None, ds: str = "2026-06-30"):
    """The task's templated fields as a run of ``ds`` with ``conf`` would render them (the task runner merges
    and validates the params with ``process_params``)."""
    from airflow.sdk.definitions.param import process_params

    task = copy.deepcopy(dag.get_task(task_id))
    params = process_params(dag, task, conf or {}, suppress_exception=False)
    task.render_template_fields({"ds": ds, "params": params, "dag": dag, "task": task})
    return task


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"segment_users_daily", "train_segmenter"}


@pytest.mark.parametrize("alerts", [False, True], ids=["no-alerts", "alerts"])
@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parse_touches_no_database_and_imports_nothing_heavy(dag_file, alerts, tmp_path):
    """Import the DAG file in a fresh interpreter whose metadata DB cannot exist."""
    probe = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(DAGS)!r})
spec = importlib.util.spec_from_file_location("dag_under_test", {str(dag_file)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
heavy = sorted(m for m in ("pyspark", "tensorflow", "mlflow", "great_expectations", "jobs", "ml", "duckdb")
               if m in sys.modules)
print(json.dumps({{"heavy": heavy, "alerts": "app.alerts" in sys.modules}}))
"""
    unreachable_db = f"sqlite:///{tmp_path}/no-such-dir/airflow.db"
    env = {k: v for k, v in os.environ.items() if k not in DAG_SETTINGS} | {
        "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": unreachable_db,
        "SEGMENTS_HOME": str(tmp_path / "platform")}
    if alerts:
        env["SEGMENTS_ALERT_WEBHOOK"] = "https://hooks.example.com/T0/secret-token"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"heavy": [], "alerts": alerts}
    assert not (tmp_path / "no-such-dir").exists()


@pytest.mark.parametrize("dag_id", ["segment_users_daily", "train_segmenter"])
def test_owner_tags_and_one_run_at_a_time(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "segments" in dag.tags
    assert dag.max_active_runs == 1
    assert all(task.owner == "data-platform" for task in dag.tasks)


@pytest.mark.parametrize("dag_id", ["segment_users_daily", "train_segmenter"])
def test_every_task_has_a_timeout_and_the_waits_are_not_retried(dagbag, dag_id):
    for task in dagbag.dags[dag_id].tasks:
        assert isinstance(task.execution_timeout, timedelta), task.task_id
        assert task.execution_timeout > timedelta(0), task.task_id
        if task.task_id in SENSORS:
            # A wait fails after its own timeout (12 h), before Airflow's execution timeout; not retried.
            assert task.timeout == 12 * 3600 and task.retries == 0, task.task_id
            assert task.execution_timeout > timedelta(hours=12)
            assert 1 <= task.poke_interval <= 60
        else:
            # Other failures retry once, soon; a rejected gate is not retried (test_failing_well.py).
            assert task.retries == 1 and task.retry_delay <= timedelta(minutes=5), task.task_id


def test_daily_dag_structure(daily):
    assert {t.task_id for t in daily.tasks} == {"wait_for_raw_events", "wait_for_raw_orders", "segment_users"}
    chain = daily.get_task("segment_users")
    assert chain.upstream_task_ids == {"wait_for_raw_events", "wait_for_raw_orders"}
    assert chain.task_type == "SegmentsSparkSubmit"
    assert chain.application_args == ["--quiet", "run", "--ds", "{{ ds }}", "--model", "{{ params.model }}"]
    assert chain.pool == "segments_writer"
    assert chain.execution_timeout == timedelta(hours=3)
    # Its outlets: every table the chain publishes, as the stages of app/chain.py declare them.
    assert [o.name for o in chain.outlets] == [s.outlet for s in DAILY_CHAIN if s.outlet] == [
        "features.user_features", "segments.user_segments", "segments.segment_profiles", "bi.segments"]
    assert daily.catchup is False


def test_the_chain_task_uses_the_job_environment_and_the_spark_connection(daily):
    from core import settings

    chain = daily.get_task("segment_users")
    assert chain.application.endswith("app/spark_submit_main.py")
    assert chain.conf["spark.pyspark.python"].endswith(".venv/bin/python")
    assert chain.conf.get("spark.driver.extraJavaOptions", "") == settings.load().spark_java_options
    assert chain._conn_id == "spark_default"
    assert chain.env_vars["PATH"].split(":")[0].endswith(".venv/bin")


def test_the_waits_are_for_the_success_marker_of_each_arrival_table_of_ds(daily, tmp_path):
    for table in ("raw.events", "raw.orders"):
        wait = render(daily, f"wait_for_{table.replace('.', '_')}")
        assert wait.task_type == "RawPartitionSensor" and wait.table == table and wait.ds == "2026-06-30"
        assert wait.marker.endswith(f"/warehouse/raw/{table.split('.')[1]}/ds=2026-06-30/_SUCCESS")
    assert "wait_for_raw_users" not in daily.task_ids  # an optional snapshot: never waited for


def test_an_orders_only_shop_waits_for_its_orders_only(tmp_path):
    dag = parse(tmp_path, SEGMENTS_RAW_TABLES="raw.orders,raw.users").dags["segment_users_daily"]
    assert {t.task_id for t in dag.tasks} == {"wait_for_raw_orders", "segment_users"}


def test_the_model_param_reaches_the_command(daily):
    from core import settings

    model = daily.params.get_param("model")
    assert model.value == "recorded" and model.schema["enum"] == ["recorded", "champion"]
    assert model.description
    assert tuple(model.schema["enum"]) == tuple(settings.MODEL_CHOICES)  # the CLI's `--model` choices
    assert render(daily, "segment_users").application_args == [
        "--quiet", "run", "--ds", "2026-06-30", "--model", "recorded"]
    champion = render(daily, "segment_users", {"model": "champion"})
    assert champion.application_args[-2:] == ["--model", "champion"]
    with pytest.raises(Exception, match="latest"):
        render(daily, "segment_users", {"model": "latest"})


def test_training_waits_for_the_daily_run_and_shares_the_writer_pool(training):
    order = ["wait_for_daily_run", "build_features", "validate_features", "train"]
    assert {t.task_id for t in training.tasks} == set(order)
    for upstream, downstream in zip(order, order[1:]):
        assert training.get_task(upstream).downstream_task_ids == {downstream}
    wait = training.get_task("wait_for_daily_run")
    assert wait.task_type == "DailyRunSensor" and wait.external_dag_id == "segment_users_daily"
    assert wait.external_task_ids is None  # the whole run
    assert wait.allowed_states == ["success"] and wait.failed_states == ["failed"] and wait.deferrable
    assert {t.task_id for t in training.tasks if t.pool == "segments_writer"} == {"build_features",
                                                                                 "validate_features"}
    assert training.get_task("build_features").application_args == [
        "--quiet", "features", "--ds", "{{ ds }}", "--refit-params"]
    assert training.get_task("train").execution_timeout == timedelta(hours=8)
    assert training.catchup is False


def test_the_daily_run_of_the_same_ds_is_the_one_at_midnight():
    from datetime import datetime, timezone

    sys.path.insert(0, str(DAGS))
    try:
        from _common import _day_start
    finally:
        sys.path.remove(str(DAGS))
    manual = datetime(2026, 6, 30, 13, 45, 12, tzinfo=timezone.utc)
    assert _day_start(manual) == datetime(2026, 6, 30, tzinfo=timezone.utc)


def test_training_params_default_to_the_settings_and_reach_the_command(training):
    from core import settings

    s = settings.load()
    params = {name: training.params.get_param(name) for name in ("epochs", "method", "seed")}
    assert {n: p.value for n, p in params.items()} == {"epochs": s.train_epochs, "method": s.segment_method,
                                                       "seed": s.seed}
    assert all(p.description for p in params.values())
    assert params["method"].schema["enum"] == list(settings.SEGMENT_METHODS)
    train = render(training, "train")
    assert train.arguments == ["train", "--ds", "2026-06-30", "--epochs", str(s.train_epochs),
                               "--method", s.segment_method, "--seed", str(s.seed)]
    train = render(training, "train", {"epochs": 2, "method": "rfm_kmeans", "seed": 5})
    assert train.arguments[3:] == ["--epochs", "2", "--method", "rfm_kmeans", "--seed", "5"]
    assert train.command[0].endswith(".venv/bin/segments") and train.command[1] == "--quiet"
    with pytest.raises(Exception):
        render(training, "train", {"epochs": 0})


def test_schedules(daily, training):
    # Data-interval timetables: the run for ds starts after the day [ds, ds + 1) is complete.
    assert type(daily.timetable).__name__ == type(training.timetable).__name__ == "CronDataIntervalTimetable"
    assert (daily.timetable.expression, training.timetable.expression) == ("0 0 * * *", "0 0 * * 0")


def first_scheduled_run(dag):
    """The logical date of the first run a scheduler creates when the DAG is unpaused (no run before)."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    info = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup))
    return info.logical_date


def test_catchup_is_opt_in(daily, tmp_path):
    from datetime import datetime, timezone

    # Unpaused, a fresh deployment starts with the latest complete day, not with SEGMENTS_START_DATE.
    assert daily.start_date == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert datetime.now(timezone.utc) - first_scheduled_run(daily) < timedelta(days=2)
    bag = parse(tmp_path, SEGMENTS_CATCHUP="true")
    assert bag.dags["segment_users_daily"].catchup is True
    assert first_scheduled_run(bag.dags["segment_users_daily"]) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert bag.dags["train_segmenter"].catchup is False  # training runs as of its latest week only
    assert "SEGMENTS_CATCHUP" in parse(tmp_path, SEGMENTS_CATCHUP="maybe").import_errors.popitem()[1]


def test_timeouts_come_from_the_settings(tmp_path):
    bag = parse(tmp_path, SEGMENTS_WAIT_TIMEOUT_HOURS="0.5", SEGMENTS_TASK_TIMEOUT_HOURS="1",
                SEGMENTS_TRAIN_TIMEOUT_HOURS="2")
    daily, training = bag.dags["segment_users_daily"], bag.dags["train_segmenter"]
    assert daily.get_task("wait_for_raw_events").timeout == 1800
    assert training.get_task("wait_for_daily_run").timeout == 1800
    assert daily.get_task("segment_users").execution_timeout == timedelta(hours=1)
    assert training.get_task("build_features").execution_timeout == timedelta(hours=1)
    assert training.get_task("train").execution_timeout == timedelta(hours=2)


def test_training_validates_features_without_a_jvm(training):
    """Its gate's suite runs on GX's pandas engine: the CLI, not spark-submit."""
    task = training.get_task("validate_features")
    table = task.arguments[task.arguments.index("--table") + 1]
    engine = json.loads((REPO / "expectations" / f"{table}.json").read_text())["meta"]["engine"]
    assert (engine, task.task_type) == ("pandas", "SegmentsCommand")


def test_without_an_alert_destination_nothing_is_attached(daily, training):
    assert daily.deadline is None
    for task in [*daily.tasks, *training.tasks]:
        assert not task.on_failure_callback, task.task_id


def test_an_alert_destination_attaches_the_notifier_and_the_late_run_deadline(tmp_path):
    bag = parse(tmp_path, SEGMENTS_ALERT_WEBHOOK="https://hooks.example.com/T0/secret-token",
                SEGMENTS_LATE_AFTER_HOURS="4")
    daily = bag.dags["segment_users_daily"]
    for dag in bag.dags.values():
        for task in dag.tasks:
            assert [type(c).__name__ for c in task.on_failure_callback] == ["SegmentsNotifier"], task.task_id
    [deadline] = daily.deadline
    assert type(deadline.reference).__name__ == "DagRunLogicalDateDeadline"
    assert deadline.interval == timedelta(days=1, hours=4)  # 4 h after the data interval [ds, ds + 1) ended
    assert deadline.callback.path == "app.alerts.SegmentsNotifier"
    assert deadline.callback.kwargs == {"event": "late", "late_after_hours": 4.0}  # no URL, no token
    assert bag.dags["train_segmenter"].deadline is None
