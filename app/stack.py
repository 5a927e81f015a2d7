"""The production-like stack on one machine: ``make up``, ``make status``, ``make down``.

Real processes of the two environments, each a server of its own, as in production:

- Airflow 3 (``.venv-airflow``, started through ``bin/airflow`` so it derives the same environment as the
  user's commands): api-server, scheduler (LocalExecutor), dag-processor, triggerer; metadata on PostgreSQL;
  pool ``segments_writer`` (1 slot); the simple auth manager with everyone admin, bound to 127.0.0.1.
- an MLflow tracking server (``.venv``) on PostgreSQL that owns and serves its artifact store;
- a Spark standalone master and worker (``.venv``'s ``spark-class``), the ``spark_default`` connection;
- a Spark Connect server (``spark-submit`` of ``SparkConnectServer``): one long-lived Spark driver on that
  master that every job of the stack is a thin client of (SEGMENTS_SPARK_REMOTE, the Airflow connection
  ``spark_connect_default``); its driver UI shows their queries;
- BI publishing to PostgreSQL.

Airflow, MLflow and BI each get a database of their own on one PostgreSQL server, ``<prefix>_airflow``,
``<prefix>_mlflow`` and ``<prefix>_bi``, created when missing and never dropped here. Everything else lives
under ``$SEGMENTS_HOME/stack/``: ``logs/<component>.log``, ``run/<component>.json`` (pid and start time of
each process), ``airflow/`` (AIRFLOW_HOME), ``mlflow/artifacts/``, ``spark/`` (work dirs, scratch space,
the Connect server's warehouse dir), ``stack.json`` (the settings
it was started with) and, while it is up, ``stack.env``: the variables that point at its servers, which
``core/settings.py`` uses as defaults, so the commands of this checkout (``segments``, ``bin/airflow``)
talk to the stack without further steps.

The components are declared once, as data (``COMPONENTS``); ``docker/compose.yaml`` describes the same
topology and tests/unit/test_stack.py checks that both agree. Stdlib only (psycopg is imported when the
databases are created or checked: run it with the job environment's Python).

    .venv/bin/python -m app.stack up|status|down

Tests use the same functions: ``up(StackConfig.from_env(home=..., prefix=..., ports=free_ports()))``,
``status(home)`` and ``down(home)``; ``start_connect_server``/``stop_group`` run the Connect server alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from core import settings as settings_mod
from core.errors import PlatformError
from core.settings import REPO_ROOT, spark_connect_connection, spark_connection

HOST = "127.0.0.1"  # every server listens here only: the UI and API let everyone in as admin
JOB_BIN = REPO_ROOT / ".venv" / "bin"
AIRFLOW_BIN = REPO_ROOT / ".venv-airflow" / "bin"
AIRFLOW_CLI = REPO_ROOT / "bin" / "airflow"

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_PREFIX = "segments"
DATABASES = ("airflow", "mlflow", "bi")  # one database each: <prefix>_airflow, <prefix>_mlflow, <prefix>_bi
DEFAULT_PORTS = {
    "airflow": 8080,  # api-server: UI, REST API, the tasks' execution API
    "airflow_logs": 8793,  # the scheduler's log server (LocalExecutor task logs)
    "triggerer_logs": 8794,  # the triggerer's log server
    "mlflow": 5000,
    "spark_master": 7077,
    "spark_master_ui": 8081,
    "spark_worker_ui": 8082,
    "spark_connect": 15002,  # the Spark Connect server's gRPC endpoint: the jobs' sc:// URL
    "spark_connect_ui": 4040,  # its driver UI (the jobs' queries, stages, SQL plans)
}
POOLS = {"segments_writer": (1, "one writer of the warehouse's shared state (daily and training DAGs)")}
# Clients log artifacts through the server (--serve-artifacts): the experiment's artifact location.
MLFLOW_ARTIFACTS = "mlflow-artifacts:/user_segmentation"
# Airflow settings of the stack that do not depend on where it runs (docker/compose.yaml has the same).
AIRFLOW_STACK_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER":
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # task logs show the tasks' output (the embedded CLI: WARNING)
}
# Every process of a stack, and every process they start (tasks, Spark executors), carries this variable:
# `down` finds them all by it, and never touches anything else.
MARKER = "SEGMENTS_STACK_DIR"
STOP_TIMEOUT = 30.0  # seconds between TERM and KILL


class StackError(PlatformError):
    """The stack cannot be started, checked or stopped as asked."""

    hint = "`make status` shows each component; logs are under $SEGMENTS_HOME/stack/logs/"


# ------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and what it listens on (``from_env`` reads the SEGMENTS_STACK_* settings)."""

    home: Path
    postgres_url: str = DEFAULT_POSTGRES_URL  # the server; its database (default postgres) is for admin only
    prefix: str = DEFAULT_PREFIX
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    worker_cores: int = 2
    worker_memory: str = "4g"
    # The Spark Connect server's driver and executors: the platform's SEGMENTS_SPARK_DRIVER_MEMORY and
    # SEGMENTS_SPARK_EXECUTOR_MEMORY (``from_env``), as for a job's own driver.
    driver_memory: str = "4g"
    executor_memory: str = "2g"
    timeout: float = 180.0  # seconds `up` waits for the components to be healthy

    @classmethod
    def from_env(cls, home: Path | str | None = None, **overrides) -> "StackConfig":
        """The settings from the environment (SEGMENTS_STACK_*); keyword arguments win (tests)."""
        env = os.environ

        def number(name: str, default: float, kind: type = int):
            value = env.get(name, "").strip()
            try:
                return kind(value) if value else default
            except ValueError:
                raise StackError(f"{name} must be a number, got {value!r}") from None

        ports = {key: number(port_variable(key), default) for key, default in DEFAULT_PORTS.items()}
        ports.update(overrides.pop("ports", None) or {})
        platform = settings_mod.load()
        values = dict(
            home=Path(home).expanduser().resolve() if home else platform.home,
            postgres_url=env.get("SEGMENTS_STACK_POSTGRES_URL", "").strip() or DEFAULT_POSTGRES_URL,
            prefix=env.get("SEGMENTS_STACK_DB_PREFIX", "").strip() or DEFAULT_PREFIX,
            ports=ports,
            worker_cores=number("SEGMENTS_STACK_SPARK_WORKER_CORES", 2),
            worker_memory=env.get("SEGMENTS_STACK_SPARK_WORKER_MEMORY", "").strip() or "4g",
            driver_memory=platform.spark_driver_memory,
            executor_memory=platform.spark_executor_memory,
            timeout=number("SEGMENTS_STACK_TIMEOUT", 180.0, float),
        )
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        url = urlsplit(self.postgres_url)
        if url.scheme not in ("postgresql", "postgres") or not url.hostname:
            raise StackError(f"SEGMENTS_STACK_POSTGRES_URL must be a postgresql://user@host:port URL, "
                             f"got {self.postgres_url!r}")
        if url.password is not None:
            raise StackError("SEGMENTS_STACK_POSTGRES_URL holds a password: it would be written to the "
                             "stack's files and command lines",
                             hint="give the password in PGPASSWORD or ~/.pgpass instead")
        if not (self.prefix.replace("_", "a").isalnum() and self.prefix.isascii() and self.prefix[0].isalpha()
                and self.prefix == self.prefix.lower() and len(self.prefix) <= 40):
            raise StackError("SEGMENTS_STACK_DB_PREFIX must be lower-case letters, digits and _ (starting "
                             f"with a letter, at most 40), got {self.prefix!r}")
        if not (int(self.worker_cores) >= 1 and _mebibytes(self.worker_memory)):
            raise StackError("SEGMENTS_STACK_SPARK_WORKER_CORES must be >= 1 and "
                             "SEGMENTS_STACK_SPARK_WORKER_MEMORY a size like 4g or 4096m, got "
                             f"{self.worker_cores!r} and {self.worker_memory!r}")
        for name, size in (("SEGMENTS_SPARK_DRIVER_MEMORY", self.driver_memory),
                           ("SEGMENTS_SPARK_EXECUTOR_MEMORY", self.executor_memory)):
            if not _mebibytes(size):
                raise StackError(f"{name} must be a size like 2g or 2048m, got {size!r}")
        # Else the worker never starts an executor for the Connect server: every job would wait forever.
        if _mebibytes(self.executor_memory) > _mebibytes(self.worker_memory):
            raise StackError(f"SEGMENTS_SPARK_EXECUTOR_MEMORY ({self.executor_memory}) is more than the "
                             f"worker offers (SEGMENTS_STACK_SPARK_WORKER_MEMORY, {self.worker_memory})")
        if set(self.ports) != set(DEFAULT_PORTS):
            raise StackError(f"ports must name exactly {', '.join(DEFAULT_PORTS)}")
        taken: dict[int, str] = {}
        for key, port in self.ports.items():
            if not 0 < int(port) < 65536:
                raise StackError(f"{port_variable(key)} must be a TCP port, got {port!r}")
            if port in taken:
                raise StackError(f"{port_variable(key)} and {port_variable(taken[port])} are both {port}")
            taken[port] = key

    # Locations under $SEGMENTS_HOME/stack/.
    @property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @property
    def logs_dir(self) -> Path:
        return self.stack_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.stack_dir / "run"

    @property
    def env_file(self) -> Path:
        return settings_mod.stack_env_path(self.home)

    @property
    def spark_master(self) -> str:
        return f"spark://{HOST}:{self.ports['spark_master']}"

    @property
    def spark_remote(self) -> str:
        return f"sc://{HOST}:{self.ports['spark_connect']}"

    def database(self, which: str) -> str:
        return f"{self.prefix}_{which}"

    def database_url(self, which: str | None, scheme: str = "postgresql") -> str:
        """A URL of the server: of database ``<prefix>_<which>`` (None: the admin database)."""
        url = urlsplit(self.postgres_url)
        path = f"/{self.database(which)}" if which else (url.path if url.path.strip("/") else "/postgres")
        return urlunsplit((scheme, url.netloc, path, url.query, ""))

    def values(self) -> dict[str, str]:
        """The placeholders of the component table."""
        return {
            "host": HOST, "job_bin": str(JOB_BIN), "airflow_cli": str(AIRFLOW_CLI),
            "stack": str(self.stack_dir), "job_python": str(JOB_BIN / "python"),
            "spark_master": self.spark_master, "worker_cores": str(self.worker_cores),
            "worker_memory": self.worker_memory, "driver_memory": self.driver_memory,
            "executor_memory": self.executor_memory,
            "mlflow_db": self.database_url("mlflow", "postgresql+psycopg"),
            **{f"{key}_port": str(port) for key, port in self.ports.items()},
        }

    def to_json(self) -> dict:
        return {**asdict(self), "home": str(self.home), "ports": dict(self.ports)}

    @classmethod
    def from_json(cls, data: dict) -> "StackConfig":
        # A stack.json of an older version lacks the newer ports (spark_connect ...): their defaults.
        ports = {**DEFAULT_PORTS, **data.get("ports", {})}
        return cls(**{**data, "home": Path(data["home"]), "ports": ports})


def port_variable(key: str) -> str:
    """The setting of one port: SEGMENTS_STACK_AIRFLOW_PORT, SEGMENTS_STACK_SPARK_MASTER_UI_PORT, ..."""
    return f"SEGMENTS_STACK_{key.upper()}_PORT"


def _mebibytes(size: str) -> float:
    """A size as Spark writes it (4g, 4096m, 512k; a bare number is MiB) in MiB; 0 when it is not one."""
    found = re.fullmatch(r"(\d+)([kmgt]?)b?", str(size).strip().lower())
    if not found:
        return 0
    return int(found.group(1)) * {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 ** 2}[found.group(2)]


def stack_environment(config: StackConfig) -> dict[str, str]:
    """What ``stack.env`` holds: the variables that point the platform at the stack's servers. The stack's
    processes run with them; core.settings makes them the defaults of every command while the stack is up."""
    ports = config.ports
    return {
        "MLFLOW_TRACKING_URI": f"http://{HOST}:{ports['mlflow']}",
        "SEGMENTS_MLFLOW_ARTIFACTS": MLFLOW_ARTIFACTS,
        "SEGMENTS_BI_URL": config.database_url("bi"),
        "SEGMENTS_SPARK_MASTER": config.spark_master,  # spark-submit against the master still works
        "SEGMENTS_SPARK_REMOTE": config.spark_remote,  # every job: a client of the stack's Connect server
        "AIRFLOW_HOME": str(config.stack_dir / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": config.database_url("airflow", "postgresql+psycopg2"),
        "AIRFLOW_CONN_SPARK_DEFAULT": spark_connection(config.spark_master),
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT": spark_connect_connection(config.spark_remote),
        **AIRFLOW_STACK_SETTINGS,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{ports['airflow']}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["airflow_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["triggerer_logs"]),
    }


def env_file_text(config: StackConfig) -> str:
    """The text of ``stack.env`` (read back by ``core.settings.parse_env_file``; a shell can source it)."""
    lines = [
        f"# Written by `make up` (app/stack.py) for SEGMENTS_HOME={config.home}; `make down` removes it.",
        "# While it exists, core/settings.py takes these values as defaults: the commands of this",
        "# SEGMENTS_HOME use the stack. Variables set in the environment win.",
        "# In a shell: set -a; . stack.env",
    ]
    lines += [f"{key}={shlex.quote(value)}" for key, value in stack_environment(config).items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- components


@dataclass(frozen=True)
class Component:
    """One long-running process of the stack (its name is also its docker/compose.yaml service)."""

    name: str
    venv: str  # "job" (.venv) or "airflow" (.venv-airflow)
    argv: tuple[str, ...]  # {placeholders}: StackConfig.values()
    health: str  # a key of HEALTH_CHECKS
    url: str
    ports: tuple[str, ...] = ()  # keys of StackConfig.ports it listens on (checked free before it starts)
    env: Mapping[str, str] = field(default_factory=dict)  # beyond the stack's environment
    # Components that must be healthy before this one starts (compose.yaml: depends_on service_healthy).
    after: tuple[str, ...] = ()

    def command(self, config: StackConfig) -> list[str]:
        values = config.values()
        return [arg.format(**values) for arg in self.argv]

    def environment(self, config: StackConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment: the caller's, the stack's variables over it, this component's own."""
        values = config.values()
        env = dict(os.environ if base is None else base)
        env.update(stack_environment(config))
        env["SEGMENTS_HOME"] = str(config.home)
        env[MARKER] = str(config.stack_dir)
        env["PATH"] = f"{JOB_BIN if self.venv == 'job' else AIRFLOW_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        if self.venv == "job":
            # Spark binds its web UIs (they have kill links) to every interface unless this says otherwise;
            # executors inherit it from the worker. Not in compose.yaml: containers listen on their network.
            env["SPARK_LOCAL_IP"] = HOST
        env.update({key: value.format(**values) for key, value in self.env.items()})
        return env


# The Spark Connect server's settings (--conf). The driver listens on 127.0.0.1 only, like every server here.
SPARK_CONNECT_CONF = {
    "spark.connect.grpc.binding.address": "{host}",
    "spark.connect.grpc.binding.port": "{spark_connect_port}",
    "spark.driver.host": "{host}",
    "spark.ui.port": "{spark_connect_ui_port}",  # kept on: the jobs' queries are debugged there
    "spark.executor.memory": "{executor_memory}",
    "spark.default.parallelism": "{worker_cores}",  # jobs read it to size their work (jobs/session.py)
    # The server lives as long as the stack: it gives the worker's cores back when idle, so that a
    # spark-submit against the master (spark_default) is not starved by an idle server.
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.shuffleTracking.enabled": "true",  # no external shuffle service here
    # An idle executor holding shuffle files (a finished client's) is kept this long, not until the driver's
    # periodic GC (30 min) cleans them up: a spark-submit waits at most about this long for the cores.
    "spark.dynamicAllocation.shuffleTracking.timeout": "120s",
    "spark.sql.warehouse.dir": "{stack}/spark/warehouse",
    "spark.pyspark.python": "{job_python}",
    "spark.pyspark.driver.python": "{job_python}",
    "spark.sql.session.timeZone": "UTC",
}

COMPONENTS: tuple[Component, ...] = (
    Component(
        "spark-master", "job",
        ("{job_bin}/spark-class", "org.apache.spark.deploy.master.Master",
         "--host", "{host}", "--port", "{spark_master_port}", "--webui-port", "{spark_master_ui_port}"),
        health="spark-master", url="http://{host}:{spark_master_ui_port}",
        ports=("spark_master", "spark_master_ui"),
    ),
    Component(
        "spark-worker", "job",
        ("{job_bin}/spark-class", "org.apache.spark.deploy.worker.Worker", "{spark_master}",
         "--host", "{host}", "--webui-port", "{spark_worker_ui_port}", "--cores", "{worker_cores}",
         "--memory", "{worker_memory}", "--work-dir", "{stack}/spark/work"),
        health="spark-worker", url="http://{host}:{spark_worker_ui_port}",
        ports=("spark_worker_ui",),
        # Executors start from the worker's environment: the job env's Python, scratch space under the stack.
        env={"PYSPARK_PYTHON": "{job_python}", "SPARK_LOCAL_DIRS": "{stack}/spark/local"},
    ),
    Component(
        # SparkSubmit knows this class: no application jar or file to submit.
        "spark-connect", "job",
        ("{job_bin}/spark-submit", "--master", "{spark_master}",
         "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--name", "segments-spark-connect", "--driver-memory", "{driver_memory}",
         *(arg for key, value in SPARK_CONNECT_CONF.items() for arg in ("--conf", f"{key}={value}"))),
        health="spark-connect", url="http://{host}:{spark_connect_ui_port}",
        ports=("spark_connect", "spark_connect_ui"),
        env={"PYSPARK_PYTHON": "{job_python}", "SPARK_LOCAL_DIRS": "{stack}/spark/local"},
        # A driver started before its master retries, then gives up and exits: start it once it can register.
        after=("spark-master",),
    ),
    Component(
        "mlflow", "job",
        ("{job_bin}/mlflow", "server", "--host", "{host}", "--port", "{mlflow_port}", "--workers", "1",
         "--backend-store-uri", "{mlflow_db}", "--serve-artifacts",
         "--artifacts-destination", "{stack}/mlflow/artifacts"),
        health="mlflow", url="http://{host}:{mlflow_port}",
        ports=("mlflow",),
        # MLflow 3's server-side jobs (GenAI scorers: a runner and 7 huey consumers) are not used here.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    ),
    Component(
        "airflow-api-server", "airflow",
        ("{airflow_cli}", "api-server", "--host", "{host}", "--port", "{airflow_port}", "--workers", "1"),
        health="airflow-api-server", url="http://{host}:{airflow_port}",
        ports=("airflow",),
    ),
    Component(
        "airflow-scheduler", "airflow", ("{airflow_cli}", "scheduler"),
        health="airflow-scheduler", url="http://{host}:{airflow_port}/api/v2/monitor/health",
        ports=("airflow_logs",),
    ),
    Component(
        "airflow-dag-processor", "airflow", ("{airflow_cli}", "dag-processor"),
        health="airflow-dag-processor", url="http://{host}:{airflow_port}/api/v2/monitor/health",
    ),
    Component(
        "airflow-triggerer", "airflow", ("{airflow_cli}", "triggerer"),
        health="airflow-triggerer", url="http://{host}:{airflow_port}/api/v2/monitor/health",
        ports=("triggerer_logs",),
    ),
)
BY_NAME = {c.name: c for c in COMPONENTS}
# Run once before the Airflow components start (docker/compose.yaml: the airflow-init service).
AIRFLOW_INIT: tuple[tuple[str, ...], ...] = (
    ("db", "migrate"),
    *(("pools", "set", name, str(slots), description) for name, (slots, description) in POOLS.items()),
)


# ------------------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, process group, session, start time in clock ticks) of a process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def _alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and is the process that started at ``start`` (pids are reused)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and has exited
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in "ZX" and (start is None or stat[4] == start)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def stack_processes(stack_dir: Path) -> dict[int, int]:
    """Every live process of the stack in ``stack_dir`` (it carries MARKER), pid -> start ticks."""
    marker = f"{MARKER}={stack_dir}".encode()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            stat = _proc_stat(int(entry.name))
            if stat and stat[0] not in "ZX":
                found[int(entry.name)] = stat[4]
    return found


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _records(stack_dir: Path) -> dict[str, dict]:
    """The pid files of the components: name -> {pid, start, started_at, argv, log}."""
    run = stack_dir / "run"
    return {p.stem: r for p in sorted(run.glob("*.json")) if (r := _read_record(p)) is not None}


def _record_alive(record: dict | None) -> bool:
    return bool(record) and _alive(record["pid"], record.get("start"))


def _spawn(config: StackConfig, component: Component) -> dict:
    """Start one component in a session of its own, its output in logs/<name>.log; write its pid file."""
    log = config.logs_dir / f"{component.name}.log"
    argv = component.command(config)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        out.write(f"\n==== {_now()} starting: {shlex.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                cwd=config.stack_dir, env=component.environment(config),
                                start_new_session=True, close_fds=True)
    stat = _proc_stat(proc.pid)
    record = {"name": component.name, "pid": proc.pid, "start": stat[4] if stat else None,
              "started_at": time.time(), "argv": argv, "log": str(log)}
    _write(config.run_dir / f"{component.name}.json", json.dumps(record, indent=1) + "\n")
    return record


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _write(path: Path, text: str) -> None:
    """Write atomically (readers see the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _tail(path: Path | str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").rstrip("\n").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((HOST, port)) == 0:
            return True
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def _port_owner(port: int) -> str:
    """'pid N (command)' of the process listening on ``port``, when /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    if inodes:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                for fd in (proc / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return f"pid {proc.name} ({_cmdline(int(proc.name))[:120]})"
    return "another process"


def port_conflicts(config: StackConfig, components: list[Component] | tuple[Component, ...]) -> list[str]:
    """What holds the ports the given components need, one sentence per taken port."""
    return [f"port {config.ports[key]} ({port_variable(key)}), for {c.name}, is taken by "
            f"{_port_owner(config.ports[key])}"
            for c in components for key in c.ports if _port_taken(config.ports[key])]


def free_ports(keys: tuple[str, ...] = tuple(DEFAULT_PORTS)) -> dict[str, int]:
    """Ports free right now, one per key (tests: a stack beside any other)."""
    sockets = []
    try:
        for _ in keys:
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return {key: s.getsockname()[1] for key, s in zip(keys, sockets)}
    finally:
        for s in sockets:
            s.close()


# ------------------------------------------------------------------------------------- health


def _http(url: str, timeout: float = 10.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class _Probe:
    """One status round: each URL fetched at most once (the Airflow health serves four components)."""

    def __init__(self, config: StackConfig, records: Mapping[str, dict]) -> None:
        self.config, self.records, self._cache = config, records, {}

    def json(self, url: str) -> dict | list:
        if url not in self._cache:
            try:
                code, body = _http(url)
                self._cache[url] = json.loads(body) if code == 200 else {"_error": f"HTTP {code} from {url}"}
            except (OSError, ValueError) as exc:
                self._cache[url] = {"_error": f"{url}: {getattr(exc, 'reason', exc)}"}
        return self._cache[url]

    def url(self, key: str, path: str = "") -> str:
        return f"http://{HOST}:{self.config.ports[key]}{path}"


def _check_spark_master(probe: _Probe) -> tuple[bool, str]:
    state = probe.json(probe.url("spark_master_ui", "/json/"))
    if "_error" in state:
        return False, state["_error"]
    alive = state.get("aliveworkers", 0)
    return state.get("status") == "ALIVE", f"{state.get('url')}, {alive} worker(s) alive"


def _check_spark_worker(probe: _Probe) -> tuple[bool, str]:
    worker = probe.json(probe.url("spark_worker_ui", "/json/"))
    if "_error" in worker:
        return False, worker["_error"]
    master = probe.json(probe.url("spark_master_ui", "/json/"))
    registered = any(w.get("id") == worker.get("id") and w.get("state") == "ALIVE"
                     for w in master.get("workers", []))
    detail = f"{worker.get('cores')} cores, {worker.get('memory')} MB"
    return registered, detail + ("" if registered else f", not registered with {probe.config.spark_master}")


def _check_spark_connect(probe: _Probe) -> tuple[bool, str]:
    """The gRPC port accepts connections, and the driver's application is registered with the master."""
    endpoint = probe.config.spark_remote
    try:  # gRPC opens last, once the driver's SparkContext is up
        socket.create_connection((HOST, probe.config.ports["spark_connect"]), timeout=5).close()
    except OSError as exc:
        return False, f"{endpoint}: {exc.strerror or exc}"
    apps = probe.json(probe.url("spark_connect_ui", "/api/v1/applications"))
    if isinstance(apps, dict) or not apps:
        return False, f"{endpoint}; driver UI: " + (apps.get("_error", "?") if isinstance(apps, dict)
                                                    else "no application")
    app_id = apps[0].get("id")
    master = probe.json(probe.url("spark_master_ui", "/json/"))
    mine = [a for a in (master.get("activeapps", []) if isinstance(master, dict) else [])
            if a.get("id") == app_id]
    if not mine:
        return False, f"{endpoint}, {app_id} not registered with {probe.config.spark_master}"
    # Executors come and go with the load (dynamic allocation): 0 cores while idle.
    return True, f"{endpoint}, {app_id}, {mine[0].get('cores', 0)} core(s) in use"


def _check_mlflow(probe: _Probe) -> tuple[bool, str]:
    try:
        code, body = _http(probe.url("mlflow", "/health"))
    except OSError as exc:
        return False, str(getattr(exc, "reason", exc))
    return code == 200 and body.strip() == "OK", f"backend {probe.config.database('mlflow')}"


def _airflow_health(probe: _Probe) -> dict:
    return probe.json(probe.url("airflow", "/api/v2/monitor/health"))


def _check_airflow_api(probe: _Probe) -> tuple[bool, str]:
    health = _airflow_health(probe)
    if "_error" in health:
        return False, health["_error"]
    db = (health.get("metadatabase") or {}).get("status")
    return db == "healthy", f"metadata database {probe.config.database('airflow')} {db}"


def _heartbeat_check(key: str, heartbeat: str, name: str) -> Callable[[_Probe], tuple[bool, str]]:
    def check(probe: _Probe) -> tuple[bool, str]:
        health = _airflow_health(probe)
        if "_error" in health:
            return False, health["_error"]
        info = health.get(key) or {}
        beat = info.get(heartbeat)
        if not beat:
            return False, "no heartbeat yet"
        beat_at = dt.datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp()
        started = (probe.records.get(name) or {}).get("started_at", 0)
        age = f"heartbeat {max(0, time.time() - beat_at):.0f}s ago"
        if beat_at < started - 2:  # a heartbeat of an earlier process (within the threshold)
            return False, f"no heartbeat since start ({age})"
        return info.get("status") == "healthy", age
    return check


HEALTH_CHECKS: dict[str, Callable[[_Probe], tuple[bool, str]]] = {
    "spark-master": _check_spark_master,
    "spark-worker": _check_spark_worker,
    "spark-connect": _check_spark_connect,
    "mlflow": _check_mlflow,
    "airflow-api-server": _check_airflow_api,
    "airflow-scheduler": _heartbeat_check("scheduler", "latest_scheduler_heartbeat", "airflow-scheduler"),
    "airflow-dag-processor": _heartbeat_check("dag_processor", "latest_dag_processor_heartbeat",
                                              "airflow-dag-processor"),
    "airflow-triggerer": _heartbeat_check("triggerer", "latest_triggerer_heartbeat", "airflow-triggerer"),
}


@dataclass(frozen=True)
class Health:
    name: str
    healthy: bool
    pid: int | None
    url: str
    detail: str


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise StackError("psycopg is not importable: run the stack with the job environment's Python",
                         hint=".venv/bin/python -m app.stack ... (or make up / status / down)") from None
    return psycopg


def _postgres_health(config: StackConfig) -> Health:
    psycopg = _psycopg()
    url = config.database_url(None)
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    except psycopg.Error as exc:
        return Health("postgres", False, None, config.postgres_url, str(exc).strip().splitlines()[0])
    missing = [config.database(d) for d in DATABASES if config.database(d) not in names]
    detail = f"missing database(s) {', '.join(missing)}" if missing else \
        ", ".join(config.database(d) for d in DATABASES)
    return Health("postgres", not missing, None, config.postgres_url, detail)


def _component_health(config: StackConfig, component: Component, record: dict | None,
                      probe: _Probe) -> Health:
    url = component.url.format(**config.values())
    if not _record_alive(record):
        where = f"; log: {record['log']}" if record else ""
        return Health(component.name, False, None, url, "not running" + where)
    healthy, detail = HEALTH_CHECKS[component.health](probe)
    return Health(component.name, healthy, record["pid"], url, detail)


def _create_databases(config: StackConfig) -> list[str]:
    """Create the databases that are missing; the names of those created."""
    psycopg = _psycopg()
    created = []
    try:
        with psycopg.connect(config.database_url(None), autocommit=True, connect_timeout=5) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for which in DATABASES:
                name = config.database(which)
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
    except psycopg.Error as exc:
        raise StackError(f"PostgreSQL at {config.postgres_url} is unreachable or refused: "
                         f"{str(exc).strip().splitlines()[0]}",
                         hint="start the server, or point SEGMENTS_STACK_POSTGRES_URL at one (password: "
                              "PGPASSWORD or ~/.pgpass)") from None
    return created


# ---------------------------------------------------------------------------------- up / status / down


@contextlib.contextmanager
def _locked(stack_dir: Path) -> Iterator[None]:
    """One `up` or `down` of a stack at a time."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    with open(stack_dir / "stack.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(f"another `make up` or `make down` of {stack_dir} is running") from None
        yield


def _check_prerequisites() -> None:
    for path in (JOB_BIN / "spark-class", JOB_BIN / "spark-submit", JOB_BIN / "mlflow",
                 AIRFLOW_BIN / "airflow", AIRFLOW_CLI):
        if not os.access(path, os.X_OK):
            raise StackError(f"{path} is missing", hint="run `make install` first")
    # The server's classes ship with pyspark 4's full package, not with the pyspark-client package.
    if not list(JOB_BIN.parent.glob("lib/python*/site-packages/pyspark/jars/spark-connect_*.jar")):
        raise StackError(f"the Spark Connect server's jar is missing from {JOB_BIN.parent}'s pyspark",
                         hint="run `make install` (locks/job.txt installs the full pyspark)")
    if not (os.environ.get("JAVA_HOME") or any(os.access(Path(d) / "java", os.X_OK)
                                                for d in os.environ.get("PATH", "").split(":") if d)):
        raise StackError("Java not found; Spark needs Java 17 or 21",
                         hint="apt-get install openjdk-17-jdk-headless")


def _run_airflow(config: StackConfig, args: tuple[str, ...], log: Path, timeout: float) -> None:
    """One Airflow CLI command of the stack (db migrate, pools set), output appended to ``log``."""
    component = BY_NAME["airflow-scheduler"]  # the Airflow environment of the stack
    argv = [str(AIRFLOW_CLI), *args]
    with open(log, "ab") as out:
        out.write(f"\n==== {_now()} {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=config.stack_dir, env=component.environment(config), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"`airflow {' '.join(args[:2])}` did not finish in {timeout:.0f}s; "
                             f"log: {log}") from None
    if done.returncode != 0:
        raise StackError(f"`airflow {' '.join(args[:2])}` failed (exit {done.returncode}); log: {log}\n"
                         + _tail(log))


def _airflow_version() -> str:
    found = sorted(AIRFLOW_BIN.parent.glob("lib/python*/site-packages/apache_airflow_core-*.dist-info"))
    return found[-1].name.split("-")[1] if found else "?"


def _alembic_revision(config: StackConfig) -> str | None:
    psycopg = _psycopg()
    try:
        with psycopg.connect(config.database_url("airflow"), connect_timeout=5) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.Error:  # no table yet: never migrated
        return None
    return row[0] if row else None


def _migration_stamp(config: StackConfig) -> dict:
    return {"database": config.database_url("airflow"), "airflow": _airflow_version(),
            "revision": _alembic_revision(config)}


def _migrated(config: StackConfig) -> bool:
    """Whether `airflow db migrate` already ran for this Airflow on this very database (it costs ~20 s)."""
    stamp = _read_record(config.stack_dir / "airflow" / "migrated.json")
    return bool(stamp) and stamp.get("revision") is not None and stamp == _migration_stamp(config)


def _stamp_migrated(config: StackConfig) -> None:
    _write(config.stack_dir / "airflow" / "migrated.json", json.dumps(_migration_stamp(config)) + "\n")


def up(config: StackConfig | None = None, out: Callable[[str], None] = print) -> dict[str, str]:
    """Start what is not running, wait until every component is healthy; the URLs by component.

    Idempotent: running components are left alone. Raises StackError naming the component and its log
    when one does not start, and what holds a port that is taken.
    """
    config = config or StackConfig.from_env()
    config.validate()
    _check_prerequisites()
    with _locked(config.stack_dir):
        for sub in ("logs", "run", "airflow", "mlflow/artifacts", "spark/work", "spark/local",
                    "spark/warehouse"):
            (config.stack_dir / sub).mkdir(parents=True, exist_ok=True)
        records = _records(config.stack_dir)
        running = {name for name, record in records.items() if name in BY_NAME and _record_alive(record)}
        state_file = config.stack_dir / "stack.json"
        previous = _read_record(state_file)
        if running and previous and _comparable(previous) != _comparable(config.to_json()):
            raise StackError(f"the stack under {config.stack_dir} is up with other settings "
                             f"({', '.join(sorted(running))} running)",
                             hint="`make down` first, or use the settings it was started with (stack.json)")
        to_start = [c for c in COMPONENTS if c.name not in running]
        conflicts = port_conflicts(config, to_start)
        if conflicts:
            raise StackError("; ".join(conflicts),
                             hint="stop that process, or choose other ports with the SEGMENTS_STACK_*_PORT "
                                  "settings")
        _write(state_file, json.dumps(config.to_json(), indent=1) + "\n")
        created = _create_databases(config)
        if created:
            out(f"created database(s) {', '.join(created)} on {config.postgres_url}")
        for name in sorted(running):
            out(f"{name}: already running (pid {records[name]['pid']})")

        started_at = time.monotonic()
        deferred = [c for c in to_start if c.after]  # started once those they come after are healthy
        for component in to_start:  # Spark and MLflow boot while Airflow's database is migrated
            if component.venv == "job" and component not in deferred:
                records[component.name] = _spawn(config, component)
        airflow_todo = [c for c in to_start if c.venv == "airflow"]
        init_log = config.logs_dir / "airflow-init.log"
        with ThreadPoolExecutor(max_workers=1) as background:
            pools = None
            if airflow_todo:
                if _migrated(config):
                    out(f"airflow: metadata database {config.database('airflow')} is up to date")
                else:
                    out(f"airflow: db migrate (log: {init_log})")
                    migrating = background.submit(_run_airflow, config, AIRFLOW_INIT[0], init_log,
                                                  config.timeout)
                    while deferred and not migrating.done():  # (the Connect server boots meanwhile)
                        _start_ready(config, records, deferred)
                        futures.wait([migrating], timeout=1.0)
                    migrating.result()
                    _stamp_migrated(config)
                for component in airflow_todo:
                    if component not in deferred:
                        records[component.name] = _spawn(config, component)
                # The pools, while the components boot (DAGs are paused at creation: nothing runs before).
                pools = background.submit(lambda: [_run_airflow(config, step, init_log, config.timeout)
                                                   for step in AIRFLOW_INIT[1:]])
            _wait_healthy(config, records, started_at, out, deferred)
            if pools is not None:
                pools.result()
                out(f"airflow: pool(s) {', '.join(f'{n} ({s} slot)' for n, (s, _) in POOLS.items())}")
        _write(config.env_file, env_file_text(config))
        for key, value in stack_environment(config).items():
            mine = os.environ.get(key, "").strip()
            if mine and mine != value:
                out(f"note: {key} is set in your environment; your commands keep using {mine!r}, "
                    f"not the stack's {value!r}")
        urls = {c.name: c.url.format(**config.values()) for c in COMPONENTS}
        out(f"\nThe stack is up ({time.monotonic() - started_at:.0f}s); SEGMENTS_HOME={config.home}")
        for line in _summary(config):
            out(line)
        return urls


def _comparable(config_json: dict) -> dict:
    return {key: value for key, value in config_json.items() if key != "timeout"}


def _summary(config: StackConfig) -> list[str]:
    ports = config.ports
    return [
        f"  Airflow UI and REST API  http://{HOST}:{ports['airflow']}  (everyone is admin; REST: /api/v2)",
        f"  MLflow                   http://{HOST}:{ports['mlflow']}",
        f"  Spark master             {config.spark_master}  UI http://{HOST}:{ports['spark_master_ui']}",
        f"  Spark worker UI          http://{HOST}:{ports['spark_worker_ui']}",
        f"  Spark Connect            {config.spark_remote}  (every job's Spark)  "
        f"driver UI http://{HOST}:{ports['spark_connect_ui']}",
        f"  BI database              {config.database_url('bi')}",
        f"  Airflow metadata         {config.database_url('airflow')}",
        f"  logs                     {config.logs_dir}/",
        f"  settings for commands    {config.env_file}  (make down removes it)",
    ]


def _start_ready(config: StackConfig, records: dict[str, dict], waiting: list[Component],
                 healthy: set[str] | None = None) -> None:
    """Start (and take off ``waiting``) each component whose ``after`` ones are healthy: those named in
    ``healthy``, else probed now."""
    probe = _Probe(config, records)
    for component in list(waiting):
        if all(name in healthy if healthy is not None else
               _record_alive(records.get(name)) and HEALTH_CHECKS[BY_NAME[name].health](probe)[0]
               for name in component.after):
            waiting.remove(component)
            records[component.name] = _spawn(config, component)


def _wait_healthy(config: StackConfig, records: dict[str, dict], started_at: float,
                  out: Callable[[str], None], deferred: list[Component] | None = None) -> None:
    """Wait until every component is healthy; start each of ``deferred`` once its ``after`` ones are."""
    deadline = time.monotonic() + config.timeout
    pending = [c for c in COMPONENTS]
    waiting = list(deferred or [])
    healthy_ones: set[str] = set()
    last: dict[str, str] = {}
    while True:
        _start_ready(config, records, waiting, healthy_ones)
        probe = _Probe(config, records)
        for component in list(pending):
            if component in waiting:
                last[component.name] = f"not started: waits for {', '.join(component.after)}"
                continue
            record = records.get(component.name)
            if not _record_alive(record):
                raise StackError(f"{component.name} exited during start-up; log: {record['log']}\n"
                                 + _tail(record["log"]),
                                 hint="fix the cause shown in the log, then `make up` again (`make down` "
                                      "stops what did start)")
            healthy, detail = HEALTH_CHECKS[component.health](probe)
            last[component.name] = detail
            if healthy:
                pending.remove(component)
                healthy_ones.add(component.name)
                out(f"{component.name}: healthy after {time.monotonic() - started_at:.0f}s  "
                    f"{component.url.format(**config.values())}")
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            details = "; ".join(f"{c.name}: {last.get(c.name, '?')}"
                                + (f" (log: {records[c.name]['log']})" if c.name in records else "")
                                for c in pending)
            raise StackError(f"not healthy after {config.timeout:.0f}s: {names}. {details}",
                             hint="read the log; SEGMENTS_STACK_TIMEOUT waits longer; `make down` stops the "
                                  "rest")
        time.sleep(1.0)


def load_config(home: Path | str | None = None) -> StackConfig | None:
    """The settings a stack of ``home`` was last started with (stack.json), or None."""
    home = Path(home).expanduser().resolve() if home else settings_mod.load().home
    data = _read_record(home / "stack" / "stack.json")
    return StackConfig.from_json(data) if data else None


def status(home: Path | str | None = None) -> list[Health]:
    """The health of PostgreSQL and of every component (pid alive + its HTTP check)."""
    config = load_config(home)
    if config is None:
        raise StackError(f"no stack was started under {home or settings_mod.load().home}",
                         hint="`make up` starts one")
    records = _records(config.stack_dir)
    probe = _Probe(config, records)
    return [_postgres_health(config)] + [
        _component_health(config, c, records.get(c.name), probe) for c in COMPONENTS]


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(pids: Mapping[int, int | None], timeout: float) -> dict[int, int | None]:
    deadline = time.monotonic() + timeout
    while True:
        left = {pid: start for pid, start in pids.items() if _alive(pid, start)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _stop(records: list[dict], timeout: float, out: Callable[[str], None]) -> None:
    """TERM the process group of each of ``records``; KILL the groups still alive after ``timeout``."""
    roots = {r["pid"]: r.get("start") for r in records if _record_alive(r)}
    # Each was started in a session of its own: its pid is its process group, which holds its children
    # (api-server workers, the executor's workers, log servers, Spark executors). Descendants that moved to
    # a group of their own (task supervisors, Spark's Python daemon) are found by MARKER in `down`.
    t0 = time.monotonic()
    for pid in roots:
        _kill_group(pid, signal.SIGTERM)
    for pid in _wait_gone(roots, timeout):
        out(f"pid {pid} ({_cmdline(pid)[:80]}) did not stop within {timeout:.0f}s: killing its group")
        _kill_group(pid, signal.SIGKILL)
    _wait_gone(roots, 5)
    if roots:
        names = ", ".join(r["name"] for r in records if r["pid"] in roots)
        out(f"stopped {names} ({time.monotonic() - t0:.0f}s)")


def down(home: Path | str | None = None, out: Callable[[str], None] = print,
         timeout: float = STOP_TIMEOUT) -> None:
    """Stop every process of the stack (TERM, KILL after ``timeout``) and check that none is left.

    Removes stack.env first, so commands stop using the stack. Keeps the databases, logs and state.
    """
    home = Path(home).expanduser().resolve() if home else settings_mod.load().home
    stack_dir = home / "stack"
    if not stack_dir.is_dir():
        out(f"no stack under {home}: nothing to stop")
        return
    with _locked(stack_dir):
        settings_mod.stack_env_path(home).unlink(missing_ok=True)
        records = _records(stack_dir)
        # The scheduler, triggerer and dag-processor first (running tasks report to the api-server while they
        # stop), then the servers.
        first = [r for n, r in records.items() if n in BY_NAME and n != "airflow-api-server"
                 and BY_NAME[n].venv == "airflow"]
        _stop(first, timeout, out)
        _stop([r for r in records.values() if r not in first], timeout, out)
        # What outlived its group: tasks in sessions of their own, Spark's Python workers.
        leftovers = stack_processes(stack_dir)
        if leftovers:
            out(f"stopping {len(leftovers)} leftover process(es): {', '.join(map(str, sorted(leftovers)))}")
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            for pid in _wait_gone(leftovers, 10):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            _wait_gone(leftovers, 5)
        alive = {r["name"]: r["pid"] for r in records.values() if _record_alive(r)}
        alive.update({_cmdline(pid)[:60]: pid for pid in stack_processes(stack_dir)})
        if alive:
            raise StackError("still running after `down`: "
                             + ", ".join(f"{n} (pid {p})" for n, p in alive.items()),
                             hint="kill them by pid, then `make down` again")
        for name in records:
            (stack_dir / "run" / f"{name}.json").unlink(missing_ok=True)
        out(f"no process of the stack is left. Kept: databases "
            f"{', '.join(f'{_prefix(home)}_{d}' for d in DATABASES)}, logs and state in {stack_dir}/")


_SERVER_STARTED = "Spark Connect server started at"  # SparkConnectServer's log line once gRPC is bound


def start_connect_server(directory: Path | str, master: str = "local[2]",
                         timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """The stack's Spark Connect server alone (tests, benchmarks): its component's command and settings on
    ``master`` (local[2]: no cluster) and free ports, its log and scratch space under ``directory``. Returns
    the process, once its gRPC port accepts clients, and its sc:// URL; ``stop_group`` stops it."""
    ports = free_ports((*DEFAULT_PORTS, "driver", "block_manager"))
    config = StackConfig(home=Path(directory).expanduser().resolve(),
                         ports={key: ports[key] for key in DEFAULT_PORTS})
    component = BY_NAME["spark-connect"]
    argv = component.command(config)
    argv[argv.index("--master") + 1] = master
    # The driver's own ports too: left to the OS, one of them can be the free port picked for gRPC (it was,
    # once: the server then failed to bind it while a TCP check of that port succeeded).
    argv += ["--conf", f"spark.driver.port={ports['driver']}", "--conf",
             f"spark.blockManager.port={ports['block_manager']}"]
    for sub in ("logs", "spark/local", "spark/warehouse"):
        (config.stack_dir / sub).mkdir(parents=True, exist_ok=True)
    # The caller's environment (not a stack's: no stack.env points at this server), the component's own.
    own = {key: value.format(**config.values()) for key, value in component.env.items()}
    path = f"{JOB_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = {**os.environ, "PATH": path, "SPARK_LOCAL_IP": HOST, **own}
    log = config.logs_dir / f"{component.name}.log"
    with open(log, "ab") as out:
        out.write(f"\n==== {_now()} starting: {shlex.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=config.stack_dir, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise StackError(f"the Spark Connect server exited (code {process.returncode}); log: {log}\n"
                             + _tail(log))
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, config.ports["spark_connect"]), timeout=2).close()
            if _SERVER_STARTED in log.read_text(errors="replace"):  # the port is the server's gRPC
                return process, config.spark_remote
        if time.monotonic() > deadline:
            stop_group(process)
            raise StackError(f"the Spark Connect server did not open {config.spark_remote} in "
                             f"{timeout:.0f}s; log: {log}")
        time.sleep(0.5)


def stop_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """TERM the process group of ``process`` (started in a session of its own), KILL it after ``timeout``."""
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        process.wait()


def _prefix(home: Path) -> str:
    config = load_config(home)
    return config.prefix if config else DEFAULT_PREFIX


# ------------------------------------------------------------------------------------- command line


def _print_status(health: list[Health]) -> None:
    width = max(len(h.name) for h in health)
    for h in health:
        pid = str(h.pid) if h.pid else "-"
        state = "healthy" if h.healthy else "DOWN"
        print(f"{h.name:<{width}}  {state:<7}  pid {pid:<7}  {h.url}  {h.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "status", "down"))
    parser.add_argument("--json", action="store_true", help="status: one JSON object per component")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        else:
            health = status()
            if not any(h.pid for h in health):
                print(f"the stack under {settings_mod.load().home}/stack is not up; `make up` starts it")
            if args.json:
                print(json.dumps([asdict(h) for h in health], indent=1))
            else:
                _print_status(health)
            down_ = [h.name for h in health if not h.healthy]
            if down_:
                print(f"not healthy: {', '.join(down_)}", file=sys.stderr)
                return 1
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: what started keeps running; `make down` stops it", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
