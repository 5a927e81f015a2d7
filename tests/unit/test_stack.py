"""The production-like stack (app/stack.py) without starting it: docker/compose.yaml declares the same
topology as the component table, and the pure logic (settings, databases, the env file core.settings reads)."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time
from contextlib import redirect_stdout
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app import stack
from core import settings
from core.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker" / "compose.yaml"
# Services of compose.yaml that are steps of `up` in the local stack, not processes of the component table:
# the server (local: already running), database creation (stack._create_databases) and stack.AIRFLOW_INIT.
COMPOSE_ONLY = {"postgres", "postgres-init", "airflow-init"}
# Host names that differ between the local stack (127.0.0.1) and the containers (service names).
HOSTS = {"127.0.0.1", "0.0.0.0", "localhost", "postgres", "mlflow", "spark-master", "spark-worker",
         "spark-connect", "airflow-api-server"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def expand(text: str) -> str:
    """Compose's interpolation with an empty environment: ${X:-default} -> default, ${X:?msg} -> <X>."""
    text = re.sub(r"\$\{(\w+):?-([^}]*)\}", r"\2", str(text))
    text = re.sub(r"\$\{(\w+):?\?[^}]*\}", r"<\1>", text)
    return text.replace("$$", "$")


def normalized(text: str) -> str:
    """Expanded, with the host of every URL (and a bare host name) replaced by HOST."""
    text = expand(text)
    # URLs, a --conf key=host (bind addresses, the driver's host), the host of a connection's JSON.
    for pattern in (r"(?<=//)([\w.-]+)(?=[:/])", r"(?<=@)([\w.-]+)(?=[:/])", r'(?<=spark://)([\w.-]+)',
                    r"(?<=\.address=)([\w.-]+)$", r"(?<=\.host=)([\w.-]+)$",
                    r'(?<="host": ")([\w.-]+)(?=")'):
        text = re.sub(pattern, lambda m: "HOST" if m.group(1) in HOSTS else m.group(1), text)
    return "HOST" if text in HOSTS else text


def service_argv(service: dict) -> list[str]:
    return list(service.get("entrypoint") or []) + list(service.get("command") or [])


def compose_config() -> stack.StackConfig:
    """The local stack's defaults, with SEGMENTS_HOME where the containers have it."""
    return stack.StackConfig(home=Path("/data"))


def test_compose_declares_the_components_of_the_table_each_with_a_health_check(compose):
    services = compose["services"]
    assert set(services) - COMPOSE_ONLY == {c.name for c in stack.COMPONENTS}
    for component in stack.COMPONENTS:
        assert "healthcheck" in services[component.name], component.name
        assert component.health in stack.HEALTH_CHECKS


def test_compose_commands_are_the_table_commands(compose):
    config = compose_config()
    for component in stack.COMPONENTS:
        mine = component.command(config)
        mine = [Path(mine[0]).name, *mine[1:]]  # bin/airflow, .venv/bin/mlflow ... -> the command on PATH
        mine = [a.replace(str(REPO_ROOT / ".venv"), "/opt/venv") for a in mine]  # the job image's venv
        theirs = service_argv(compose["services"][component.name])
        if "--allowed-hosts" in theirs:  # MLflow in containers is reached by its service name
            i = theirs.index("--allowed-hosts")
            theirs = theirs[:i] + theirs[i + 2:]
        assert [normalized(a) for a in theirs] == [normalized(a) for a in mine], component.name


def test_compose_component_env_has_the_tables_variables(compose):
    config = compose_config()
    for component in stack.COMPONENTS:
        theirs = compose["services"][component.name].get("environment") or {}
        for key, value in component.env.items():
            mine = value.format(**config.values()).replace(str(REPO_ROOT / ".venv"), "/opt/venv")
            assert expand(theirs.get(key)) == mine, (component.name, key)


def test_compose_databases_are_the_stacks(compose):
    config = compose_config()
    services = compose["services"]
    airflow_db = services["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    mlflow_argv = service_argv(services["mlflow"])
    mlflow_db = mlflow_argv[mlflow_argv.index("--backend-store-uri") + 1]
    bi_db = services["airflow-scheduler"]["environment"]["SEGMENTS_BI_URL"]
    assert {expand(u).rsplit("/", 1)[1] for u in (airflow_db, mlflow_db, bi_db)} == \
        {config.database(d) for d in stack.DATABASES} == {"segments_airflow", "segments_mlflow", "segments_bi"}
    # The init script creates exactly those (its loop over the suffixes) with the same prefix setting.
    script = (REPO_ROOT / "docker" / "postgres-init.sh").read_text()
    assert tuple(re.search(r"for db in ([\w ]+); do", script).group(1).split()) == stack.DATABASES
    assert 'prefix="${SEGMENTS_STACK_DB_PREFIX:-segments}"' in script
    assert services["postgres-init"]["environment"]["SEGMENTS_STACK_DB_PREFIX"] == "${SEGMENTS_STACK_DB_PREFIX:-segments}"


def test_compose_airflow_env_is_the_stacks(compose, platform_home, monkeypatch):
    """Every variable the local stack gives Airflow (stack.env, then bin/airflow's airflow_environment()) is
    in compose.yaml's Airflow services with the same value, hosts and locations aside."""
    for key in list(os.environ):
        if key.startswith("AIRFLOW") or key in stack.stack_environment(compose_config()):
            monkeypatch.delenv(key)
    config = stack.StackConfig(home=platform_home.resolve())
    config.stack_dir.mkdir(parents=True)
    config.env_file.write_text(stack.env_file_text(config))
    mine = {**stack.stack_environment(config), **settings.airflow_environment()}
    assert mine["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert mine["AIRFLOW__CORE__PARALLELISM"] == "2"
    services = compose["services"]
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer"):
        theirs = services[name]["environment"]
        for key, value in mine.items():
            local = value.replace(str(config.home), "/data").replace(str(REPO_ROOT), "/app")
            assert key in theirs, (name, key)
            assert normalized(theirs[key]) == normalized(local), (name, key)
    # The platform's variables reach the Spark executors too (they start from the worker's environment).
    worker = services["spark-worker"]["environment"]
    assert {"SEGMENTS_HOME", "MLFLOW_TRACKING_URI", "SEGMENTS_BI_URL", "SEGMENTS_MLFLOW_ARTIFACTS"} <= set(worker)


def test_compose_mlflow_serves_its_artifacts_and_spark_default_is_the_master(compose):
    mlflow = service_argv(compose["services"]["mlflow"])
    assert "--serve-artifacts" in mlflow and "--artifacts-destination" in mlflow
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == env["SEGMENTS_SPARK_MASTER"] == \
        "spark://spark-master:7077"
    assert env["SEGMENTS_MLFLOW_ARTIFACTS"] == stack.MLFLOW_ARTIFACTS


def test_compose_starts_each_component_after_those_it_waits_for(compose):
    assert stack.BY_NAME["spark-connect"].after == ("spark-master",)
    for component in stack.COMPONENTS:
        depends = compose["services"][component.name].get("depends_on") or {}
        for name in component.after:
            assert depends[name]["condition"] == "service_healthy", (component.name, name)


def test_every_job_of_the_stack_and_of_compose_is_a_client_of_the_connect_server(compose, platform_home,
                                                                                 monkeypatch):
    for key in ("SEGMENTS_SPARK_REMOTE", "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"):
        monkeypatch.delenv(key, raising=False)
    ports = {**stack.DEFAULT_PORTS, "spark_connect": 15012, "spark_connect_ui": 4050}
    config = stack.StackConfig(home=platform_home.resolve(), ports=ports)
    env = stack.stack_environment(config)
    assert env["SEGMENTS_SPARK_REMOTE"] == "sc://127.0.0.1:15012"
    assert json.loads(env["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"]) == \
        {"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15012}
    assert env["SEGMENTS_SPARK_MASTER"] == config.spark_master  # spark-submit (spark_default) still works
    server = stack.BY_NAME["spark-connect"].command(config)
    assert server[server.index("--master") + 1] == config.spark_master
    for conf in ("spark.connect.grpc.binding.address=127.0.0.1", "spark.connect.grpc.binding.port=15012",
                 "spark.ui.port=4050", "spark.default.parallelism=2", "spark.sql.session.timeZone=UTC"):
        assert conf in server
    # While the stack is up, the commands of its SEGMENTS_HOME (jobs/session.py) and the DAGs use it.
    config.stack_dir.mkdir(parents=True)
    config.env_file.write_text(stack.env_file_text(config))
    assert settings.load().spark_remote == "sc://127.0.0.1:15012"
    assert settings.airflow_environment()["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"] == \
        env["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"]
    # SEGMENTS_SPARK_REMOTE= (set, empty) opts out: a driver of one's own, and no connection for the DAGs.
    monkeypatch.setenv("SEGMENTS_SPARK_REMOTE", "")
    assert settings.load().spark_remote == ""
    assert "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT" not in settings.airflow_environment()

    services = compose["services"]
    for name in ("airflow-scheduler", "airflow-api-server", "spark-worker", "spark-connect"):
        assert services[name]["environment"]["SEGMENTS_SPARK_REMOTE"] == "sc://spark-connect:15002", name
    scheduler = services["airflow-scheduler"]["environment"]
    assert json.loads(scheduler["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"]) == \
        {"conn_type": "spark_connect", "host": "spark-connect", "port": 15002}
    assert "spark.connect.grpc.binding.port=15002" in service_argv(services["spark-connect"])
    assert "127.0.0.1:15002:15002" in services["spark-connect"]["ports"]
    assert services["airflow-scheduler"]["depends_on"]["spark-connect"]["condition"] == "service_healthy"


def test_a_component_starts_once_those_it_comes_after_are_healthy(tmp_path, monkeypatch):
    """`up` starts the Connect server only when the master is healthy (its driver must register there)."""
    config = stack.StackConfig(home=tmp_path, ports=stack.free_ports())
    me = {"pid": os.getpid(), "start": stack._proc_stat(os.getpid())[4], "log": str(tmp_path / "x.log")}
    started: list[str] = []

    def spawn(config, component):
        started.append(component.name)
        return {**me, "name": component.name}

    master_rounds: list[bool] = []  # per round: whether the Connect server had been started

    def master(probe):
        master_rounds.append("spark-connect" in started)
        return len(master_rounds) >= 3, "alive"

    monkeypatch.setattr(stack, "_spawn", spawn)
    checks = {**{name: lambda probe: (True, "ok") for name in stack.HEALTH_CHECKS}, "spark-master": master}
    monkeypatch.setattr(stack, "HEALTH_CHECKS", checks)
    monkeypatch.setattr(stack.time, "sleep", lambda seconds: None)
    records = {c.name: {**me, "name": c.name} for c in stack.COMPONENTS if not c.after}
    lines: list[str] = []
    stack._wait_healthy(config, records, time.monotonic(), lines.append,
                        [c for c in stack.COMPONENTS if c.after])
    assert started == ["spark-connect"] and master_rounds == [False, False, False]
    order = [line.split(":")[0] for line in lines]
    assert order.index("spark-master") < order.index("spark-connect")
    assert records["spark-connect"]["name"] == "spark-connect"
    # While Airflow's database is migrated, `up` probes the master itself.
    started.clear()
    waiting = [stack.BY_NAME["spark-connect"]]
    monkeypatch.setitem(checks, "spark-master", lambda probe: (False, "booting"))
    stack._start_ready(config, records, waiting)
    assert started == [] and waiting
    monkeypatch.setitem(checks, "spark-master", lambda probe: (True, "alive"))
    stack._start_ready(config, records, waiting)
    assert started == ["spark-connect"] and not waiting


def test_the_connect_servers_health_needs_its_application_registered_with_the_master(tmp_path, monkeypatch):
    with socket.socket() as grpc:
        grpc.bind(("127.0.0.1", 0))
        grpc.listen()
        ports = {**stack.free_ports(), "spark_connect": grpc.getsockname()[1]}
        config = stack.StackConfig(home=tmp_path, ports=ports)
        answers = {"/api/v1/applications": [{"id": "app-1", "name": "segments-spark-connect"}],
                   "/json/": {"status": "ALIVE", "activeapps": []}}
        monkeypatch.setattr(stack._Probe, "json", lambda self, url: answers[urlsplit(url).path])
        healthy, detail = stack._check_spark_connect(stack._Probe(config, {}))
        assert not healthy and f"app-1 not registered with {config.spark_master}" in detail
        answers["/json/"]["activeapps"] = [{"id": "app-1", "cores": 2, "state": "RUNNING"}]
        assert stack._check_spark_connect(stack._Probe(config, {})) == \
            (True, f"sc://127.0.0.1:{config.ports['spark_connect']}, app-1, 2 core(s) in use")
    healthy, detail = stack._check_spark_connect(stack._Probe(config, {}))  # the port is closed now
    assert not healthy and detail.startswith(f"sc://127.0.0.1:{config.ports['spark_connect']}: ")


def test_compose_airflow_init_migrates_and_creates_the_pools(compose):
    init = " ".join(service_argv(compose["services"]["airflow-init"]))
    assert "airflow db migrate" in init
    for name, (slots, description) in stack.POOLS.items():
        assert f'airflow pools set {name} {slots} "{description}"' in init
    assert stack.AIRFLOW_INIT[0] == ("db", "migrate")
    for component in stack.COMPONENTS:
        if component.venv == "airflow":
            depends = compose["services"][component.name]["depends_on"]
            assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_no_password_in_the_repository(compose):
    text = COMPOSE.read_text()
    assert not re.search(r"://[^/@\s]+:[^/@\s]+@", expand(text)), "a URL with a password"
    for service in compose["services"].values():
        env = service.get("environment") or {}
        for key in ("PGPASSWORD", "POSTGRES_PASSWORD"):
            if key in env:
                assert env[key].startswith("${POSTGRES_PASSWORD:?"), key
    for value in stack.stack_environment(compose_config()).values():
        assert "password" not in value.lower()


# ------------------------------------------------------------------------------------------- pure logic


def test_database_names_and_urls_follow_the_prefix_and_server():
    config = stack.StackConfig(home=Path("/h"), prefix="t_1", postgres_url="postgresql://me@db.internal:6543")
    assert [config.database(d) for d in stack.DATABASES] == ["t_1_airflow", "t_1_mlflow", "t_1_bi"]
    assert config.database_url("bi") == "postgresql://me@db.internal:6543/t_1_bi"
    assert config.database_url("airflow", "postgresql+psycopg2") == "postgresql+psycopg2://me@db.internal:6543/t_1_airflow"
    assert config.database_url(None) == "postgresql://me@db.internal:6543/postgres"
    with_admin = stack.StackConfig(home=Path("/h"), postgres_url="postgresql://me@db:5432/admin?sslmode=require")
    assert with_admin.database_url(None) == "postgresql://me@db:5432/admin?sslmode=require"
    assert with_admin.database_url("mlflow") == "postgresql://me@db:5432/segments_mlflow?sslmode=require"


def test_settings_come_from_the_environment_and_arguments_win(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_STACK_DB_PREFIX", "ci_42")
    monkeypatch.setenv("SEGMENTS_STACK_MLFLOW_PORT", "5555")
    monkeypatch.setenv("SEGMENTS_STACK_POSTGRES_URL", "postgresql://postgres@10.0.0.5:5432")
    monkeypatch.setenv("SEGMENTS_STACK_SPARK_CONNECT_PORT", "15012")
    monkeypatch.setenv("SEGMENTS_SPARK_EXECUTOR_MEMORY", "1g")  # the platform's: the Connect server's too
    config = stack.StackConfig.from_env(home=tmp_path, ports={"airflow": 9999})
    assert config.ports["spark_connect"] == 15012 and config.executor_memory == "1g"
    assert "spark.executor.memory=1g" in stack.BY_NAME["spark-connect"].command(config)
    assert config.prefix == "ci_42" and config.home == tmp_path.resolve()
    assert config.ports["mlflow"] == 5555 and config.ports["airflow"] == 9999 and config.ports["spark_master"] == 7077
    assert stack.stack_environment(config)["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5555"
    assert stack.stack_environment(config)["SEGMENTS_BI_URL"] == "postgresql://postgres@10.0.0.5:5432/ci_42_bi"
    assert stack.StackConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


@pytest.mark.parametrize("change, message", [
    ({"postgres_url": "postgresql://postgres:secret@127.0.0.1:5432"}, "password"),
    ({"postgres_url": "mysql://x@h"}, "postgresql://"),
    ({"prefix": "Bad-Prefix"}, "SEGMENTS_STACK_DB_PREFIX"),
    ({"ports": {"mlflow": 8080}}, "are both 8080"),
    ({"ports": {"mlflow": 70000}}, "SEGMENTS_STACK_MLFLOW_PORT"),
    ({"worker_memory": "lots"}, "SEGMENTS_STACK_SPARK_WORKER_MEMORY"),
    ({"driver_memory": "lots"}, "SEGMENTS_SPARK_DRIVER_MEMORY"),
    ({"executor_memory": "8g"}, "SEGMENTS_SPARK_EXECUTOR_MEMORY .8g. is more than the worker offers"),
    ({"ports": {"spark_connect": 5000}}, "SEGMENTS_STACK_SPARK_CONNECT_PORT and SEGMENTS_STACK_MLFLOW_PORT"),
])
def test_bad_settings_are_refused(tmp_path, change, message):
    with pytest.raises(stack.StackError, match=message):
        stack.StackConfig.from_env(home=tmp_path, **change)


def test_a_bad_number_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_STACK_AIRFLOW_PORT", "eighty")
    with pytest.raises(stack.StackError, match="SEGMENTS_STACK_AIRFLOW_PORT"):
        stack.StackConfig.from_env(home=tmp_path)


def test_component_environment_is_the_stacks_over_the_callers(tmp_path):
    config = stack.StackConfig(home=tmp_path, ports=stack.free_ports())
    base = {"PATH": "/usr/bin", "MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db", "SEGMENTS_HOME": "/other",
            "SEGMENTS_ENSEMBLE_SEEDS": "1"}
    worker = stack.BY_NAME["spark-worker"].environment(config, base)
    assert worker["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{config.ports['mlflow']}"  # the stack's
    assert worker["SEGMENTS_HOME"] == str(tmp_path) and worker["SEGMENTS_ENSEMBLE_SEEDS"] == "1"
    assert worker[stack.MARKER] == str(config.stack_dir)  # how `down` finds every process of the stack
    assert worker["PATH"] == f"{stack.JOB_BIN}:/usr/bin"
    assert worker["PYSPARK_PYTHON"] == str(stack.JOB_BIN / "python")
    assert worker["SPARK_LOCAL_IP"] == "127.0.0.1"  # Spark's UIs would listen on every interface
    connect = stack.BY_NAME["spark-connect"].environment(config, base)
    assert connect["PYSPARK_PYTHON"] == str(stack.JOB_BIN / "python")
    assert connect[stack.MARKER] == str(config.stack_dir)
    scheduler = stack.BY_NAME["airflow-scheduler"].environment(config, base)
    assert scheduler["PATH"].startswith(f"{stack.AIRFLOW_BIN}:")
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert scheduler["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{config.ports['airflow']}/execution/"
    assert json.loads(scheduler["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == config.spark_master
    # Airflow components start through bin/airflow: the environment the user's own commands derive.
    assert stack.BY_NAME["airflow-scheduler"].command(config) == [str(REPO_ROOT / "bin" / "airflow"), "scheduler"]


def test_the_env_file_is_the_default_of_every_command_while_it_exists(platform_home, monkeypatch):
    for key in ("AIRFLOW_CONN_SPARK_DEFAULT", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR",
                "SEGMENTS_SPARK_MASTER"):
        monkeypatch.delenv(key, raising=False)
    embedded = settings.load()
    config = stack.StackConfig(home=platform_home.resolve(), prefix="t_env")
    config.stack_dir.mkdir(parents=True)
    config.env_file.write_text(stack.env_file_text(config))
    assert settings.parse_env_file(config.env_file.read_text()) == stack.stack_environment(config)

    s = settings.load()
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert s.mlflow_artifact_root == stack.MLFLOW_ARTIFACTS
    assert s.bi_url == "postgresql://postgres@127.0.0.1:5432/t_env_bi" and s.bi_is_postgres
    assert s.spark_master == "spark://127.0.0.1:7077"
    assert s.airflow_home == config.stack_dir / "airflow"
    assert s.warehouse == embedded.warehouse  # what the stack does not set keeps its default
    airflow = settings.airflow_environment()
    assert airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == \
        "postgresql+psycopg2://postgres@127.0.0.1:5432/t_env_airflow"
    assert airflow["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert airflow["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"
    assert '"host": "spark://127.0.0.1:7077"' in airflow["AIRFLOW_CONN_SPARK_DEFAULT"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        settings.main([])
    assert "mlflow_tracking_uri = http://127.0.0.1:5000" in printed.getvalue()
    assert f"stack = {config.env_file}" in printed.getvalue()

    # Variables set in the environment still win.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    assert settings.load().mlflow_tracking_uri == "http://mlflow.internal:5000"
    printed = io.StringIO()
    with redirect_stdout(printed):
        settings.main(["--airflow-env"])
    assert "export AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in printed.getvalue()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")

    # `make down` removes the file: the embedded defaults are back at once.
    config.env_file.unlink()
    assert settings.load() == embedded
    assert "AIRFLOW__CORE__EXECUTOR" not in settings.airflow_environment()


def test_a_stack_json_of_an_older_version_reads_with_the_new_ports_defaults(tmp_path):
    """status of a stack started before the Connect server existed: its component shows as not running."""
    config = stack.StackConfig(home=tmp_path)
    old = config.to_json()
    old["ports"] = {k: v for k, v in old["ports"].items() if not k.startswith("spark_connect")}
    for key in ("driver_memory", "executor_memory"):
        del old[key]
    assert stack.StackConfig.from_json(old) == config


def test_a_bad_env_file_is_a_bad_setting(platform_home):
    path = settings.stack_env_path()
    path.parent.mkdir(parents=True)
    path.write_text("MLFLOW_TRACKING_URI='unterminated\n")
    with pytest.raises(settings.BadSetting, match="stack.env, line 1"):
        settings.load()
    path.write_text("just words\n")
    with pytest.raises(settings.BadSetting, match="expected KEY=VALUE"):
        settings.load()


def test_a_taken_port_is_named_with_its_holder(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = stack.StackConfig(home=tmp_path, ports={**stack.free_ports(), "mlflow": port})
        conflicts = stack.port_conflicts(config, stack.COMPONENTS)
        assert len(conflicts) == 1
        assert f"port {port} (SEGMENTS_STACK_MLFLOW_PORT), for mlflow, is taken by pid {os.getpid()}" in conflicts[0]
        with pytest.raises(stack.StackError, match=f"port {port}"):
            stack.up(config, out=lambda line: None)
    assert not list((tmp_path / "stack" / "run").glob("*.json"))  # nothing was started


def test_status_and_down_of_a_stack_never_started(tmp_path):
    with pytest.raises(stack.StackError, match="no stack was started"):
        stack.status(tmp_path)
    lines = []
    stack.down(tmp_path, out=lines.append)
    assert lines == [f"no stack under {tmp_path.resolve()}: nothing to stop"]
