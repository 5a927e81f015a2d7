"""The one settings module: every location, URL and tunable, read from the environment.

Defaults give the embedded platform (Parquet warehouse, SQLite MLflow, SQLite Airflow, DuckDB BI)
under one root, ``SEGMENTS_HOME`` (default ``<repo>/var``). Setting ``SEGMENTS_HOME`` alone gives a
completely separate platform. While the local production-like stack of that home is up (`make up`), the
values of its ``$SEGMENTS_HOME/stack/stack.env`` are the defaults instead (``stack_defaults``).
Stdlib only: the Airflow environment imports it at DAG parse time.

Run ``python -m core.settings`` to print the effective settings.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote

from core.errors import PlatformError

REPO_ROOT = Path(__file__).resolve().parent.parent

# Fixed by the table contract, not tunable: the LSTM reads exactly this many days.
SEQUENCE_DAYS = 28
FEATURE_WINDOWS = (7, 30, 90)


def _env(name: str, default: str) -> str:
    """The variable from the environment; else, while the local stack is up, from its file; else default."""
    value = os.environ.get(name, "").strip()
    if not value and name != "SEGMENTS_HOME":  # (the stack's file is found through SEGMENTS_HOME)
        value = stack_defaults().get(name, "").strip()
    return value or default


def _env_raw(name: str, default: str) -> str:
    """Like ``_env``, but a variable that is set and empty means empty (e.g. "no extra JVM options")."""
    value = os.environ.get(name)
    if value is None:
        value = stack_defaults().get(name)
    return default if value is None else value.strip()


class BadSetting(PlatformError, ValueError):
    """An environment variable holds a value the platform cannot use."""

    hint = "fix or unset the variable; `python -m core.settings` prints the effective settings"


# The local production-like stack (`make up`, app/stack.py) writes the variables that point at its servers
# (MLFLOW_TRACKING_URI, SEGMENTS_BI_URL, SEGMENTS_SPARK_MASTER, AIRFLOW_HOME, the Airflow metadata database
# ...) to $SEGMENTS_HOME/stack/stack.env, and `make down` removes it. While it exists, its values are the
# defaults of the settings (and of `airflow_environment`), so every command of that SEGMENTS_HOME uses the
# stack; a variable set in the environment still wins. The file is KEY=VALUE lines in shell syntax.
STACK_ENV_FILE = Path("stack") / "stack.env"
_stack_cache: dict[str, tuple[tuple[int, ...], dict[str, str]]] = {}


def stack_env_path(home: Path | str | None = None) -> Path:
    """The stack's env file of ``home`` (default: the current SEGMENTS_HOME)."""
    if home is None:
        home = os.environ.get("SEGMENTS_HOME", "").strip() or REPO_ROOT / "var"
    return Path(home).expanduser() / STACK_ENV_FILE


def parse_env_file(text: str, source: str = "env file") -> dict[str, str]:
    """KEY=VALUE lines, shell-quoted, ``#`` comments (what app/stack.py writes) -> a dict."""
    import shlex

    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise BadSetting(f"{source}, line {number}: {exc}") from None
        for token in tokens:
            key, sep, value = token.partition("=")
            if not (sep and key.isidentifier()):
                raise BadSetting(f"{source}, line {number}: expected KEY=VALUE, got {token!r}")
            values[key] = value
    return values


def stack_defaults(home: Path | str | None = None) -> dict[str, str]:
    """The running stack's variables for ``home`` (default: the current SEGMENTS_HOME), {} when it is not
    up. Read again only when the file changes (it is consulted for every setting)."""
    path = stack_env_path(home)
    try:
        st = path.stat()
    except OSError:  # no stack (or no home): the embedded defaults
        return {}
    stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _stack_cache.get(str(path))
    if cached is None or cached[0] != stamp:
        try:
            text = path.read_text()
        except OSError:  # removed between stat and read: `make down` ran
            return {}
        cached = (stamp, parse_env_file(text, str(path)))
        _stack_cache[str(path)] = cached
    return dict(cached[1])


# Teacher methods (ml/teacher.py): the RFM baseline, all features after PCA, features + sequence embedding.
SEGMENT_METHODS = ("rfm_kmeans", "feature_kmeans", "sequence_kmeans")

# Which model version labels a date (`segments score|run --model`, the daily DAG's param `model`):
# "recorded", the version that first labelled it (reruns reproduce its labels), or the current "champion".
MODEL_CHOICES = ("recorded", "champion")

# Named JVM option sets for the Spark driver (in local mode, the whole of Spark); SEGMENTS_SPARK_JAVA_OPTIONS
# replaces the profile's options. "standard" keeps the JVM's defaults: the production default.
# "small-machine" was measured on the 200k-user daily run on 2 cores (docs/benchmarks.md), each job being a
# fresh JVM that spends about half its CPU in the JIT compiler: the parallel collector (G1's concurrent
# threads cost more CPU than its short pauses are worth there), and C2 giving up on methods over 30k IR
# nodes (default 80k): user_features' whole-stage code otherwise costs 12-14 s of C2 time per method.
# The Makefile selects it for everything run on this machine (demo, tests, benchmarks).
SPARK_PROFILES = {
    "standard": "",
    "small-machine": "-XX:+UseParallelGC -XX:MaxNodeLimit=30000",
}


def _n_segments(value: str) -> int | None:
    """'auto' (k by silhouette within SEGMENTS_K_RANGE) or a fixed positive k."""
    if value.lower() == "auto":
        return None
    if not value.isdigit() or int(value) < 2:
        raise BadSetting(f"SEGMENTS_N_SEGMENTS must be 'auto' or an integer >= 2, got {value!r}")
    return int(value)


def _k_range(value: str) -> tuple[int, int]:
    """'LOW-HIGH' (inclusive), 2 <= LOW <= HIGH."""
    low, sep, high = value.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not 2 <= int(low) <= int(high):
        raise BadSetting(f"SEGMENTS_K_RANGE must look like '4-8' (2 <= low <= high), got {value!r}")
    return int(low), int(high)


# The raw tables of the contract (core/tables.py, docs/data-contract.md). A shop has raw.events or raw.orders
# or both; raw.users is optional. Feature families whose inputs a shop lacks are absent, not zeros.
RAW_TABLES = ("raw.events", "raw.orders", "raw.users")


def _raw_tables(value: str) -> tuple[str, ...]:
    """'raw.orders,raw.users' (or 'orders,users') -> the shop's raw tables, in contract order."""
    items = [n.strip() for n in value.split(",") if n.strip()]
    names = {n if n.startswith("raw.") else f"raw.{n}" for n in items}
    unknown = sorted(names - set(RAW_TABLES))
    if unknown or not names & {"raw.events", "raw.orders"}:
        raise BadSetting("SEGMENTS_RAW_TABLES must list raw.events and/or raw.orders (optionally raw.users), "
                         f"got {value!r}" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return tuple(t for t in RAW_TABLES if t in names)


def _ratio_range(value: str, name: str) -> tuple[float, float]:
    """'LOW-HIGH' with 0 < LOW <= 1 <= HIGH (SEGMENTS_GATE_VOLUME_RANGE)."""
    low, sep, high = value.partition("-")
    try:
        bounds = (float(low), float(high)) if sep else None
    except ValueError:
        bounds = None
    if bounds is None or not 0 < bounds[0] <= 1 <= bounds[1]:
        raise BadSetting(f"{name} must look like '0.5-5' (0 < low <= 1 <= high), got {value!r}")
    return bounds


def _number(value: str, name: str, low: float, high: float, wanted: str) -> float:
    """A number in [low, high], or BadSetting naming the variable."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")  # fails the range check below
    if not low <= number <= high:
        raise BadSetting(f"{name} must be {wanted}, got {value!r}")
    return number


def fraction(value: str, name: str) -> float:
    """A number in [0, 1] (SEGMENTS_INGEST_MAX_SHRINK and `segments ingest --max-shrink`, the gate's shares)."""
    return _number(value, name, 0.0, 1.0, "a number from 0 to 1")


def default_method(raw_tables: tuple[str, ...]) -> str:
    """The teacher method of a shop: features + the embedding of the daily behaviour sequence with a
    clickstream; 90-day recency, frequency and monetary for a purchase log, whose one daily channel
    (revenue) is almost always 0: its embedding splits customers by the days they happened to shop, and
    the other features dilute what predicts the next months (docs/model.md, measured on The Complete
    Journey at two cutoffs)."""
    return "sequence_kmeans" if "raw.events" in raw_tables else "rfm_kmeans"


def _spark_remote(value: str) -> str:
    """'' or a Spark Connect URL (sc://host:port[/;param=value...])."""
    if value and not value.startswith("sc://"):
        raise BadSetting(f"SEGMENTS_SPARK_REMOTE must be a Spark Connect URL like sc://127.0.0.1:15002, got {value!r}")
    return value


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default)
    if value not in allowed:
        raise BadSetting(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    airflow_home: Path
    bi_url: str
    gx_dir: Path
    spark_master: str
    # A Spark Connect endpoint (sc://host:port): when set, jobs are thin clients of that long-lived Spark driver
    # (the stack's) instead of starting a JVM of their own, and spark_master/memory/java options do not apply.
    spark_remote: str
    spark_driver_memory: str
    spark_executor_memory: str  # executors of a Spark cluster (the stack's worker); unused with local[N]
    spark_shuffle_partitions: int
    spark_profile: str  # a key of SPARK_PROFILES
    spark_java_options: str  # driver JVM options; "" = the JVM's defaults
    job_python: Path
    model_name: str
    n_segments: int | None  # None: k chosen by silhouette within k_range
    k_range: tuple[int, int]
    segment_method: str
    ensemble_seeds: int
    train_epochs: int
    seed: int
    airflow_parallelism: int
    late_data_days: int
    holiday_country: str  # ISO country code for the holiday-share feature (the `holidays` package)
    raw_tables: tuple[str, ...]  # the shop's raw tables (RAW_TABLES order)
    churned_days: int  # inactive this many days or more: lifecycle segment 'churned' (else 'lapsed')
    # `segments ingest` (docs/ingest.md): a day with more than this fraction fewer rows than the day before
    # stops the ingest (a partial export, a lost file); days after fewer than ingest_shrink_min_rows rows are
    # not compared (small days swing by chance).
    ingest_max_shrink: float
    ingest_shrink_min_rows: int
    # The raw gate (docs/data-contract.md, "Gates"): cleaning may drop or quarantine at most gate_max_rejected
    # of a partition's rows; rows and users stay within gate_volume_range times the median of the
    # gate_recent_days partitions before ds, the median of the scale column (price, amount) within a factor
    # gate_max_scale of theirs, and each category's share (event types, statuses) within gate_max_mix_shift
    # of theirs. Days (or baselines) of fewer than gate_min_rows rows are not compared: small days swing.
    gate_max_rejected: float
    gate_recent_days: int
    gate_volume_range: tuple[float, float]
    gate_max_scale: float
    gate_max_mix_shift: float
    gate_min_rows: int

    @property
    def bi_is_postgres(self) -> bool:
        return self.bi_url.startswith(("postgresql://", "postgres://"))

    @property
    def job_bin(self) -> Path:
        return self.job_python.parent


def load() -> Settings:
    """Read the settings from the environment now (tests change the environment between calls)."""
    home = Path(_env("SEGMENTS_HOME", str(REPO_ROOT / "var"))).expanduser().resolve()
    mlflow_dir = home / "mlflow"
    profile = _choice("SEGMENTS_SPARK_PROFILE", "standard", tuple(SPARK_PROFILES))
    raw_tables = _raw_tables(_env("SEGMENTS_RAW_TABLES", ",".join(RAW_TABLES)))
    return Settings(
        home=home,
        warehouse=_env("SEGMENTS_WAREHOUSE", str(home / "warehouse")),
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"),
        mlflow_artifact_root=_env("SEGMENTS_MLFLOW_ARTIFACTS", str(mlflow_dir / "artifacts")),
        airflow_home=Path(_env("AIRFLOW_HOME", str(home / "airflow"))),
        bi_url=_env("SEGMENTS_BI_URL", str(home / "bi" / "serving.duckdb")),
        gx_dir=Path(_env("SEGMENTS_GX_DIR", str(home / "gx"))),
        spark_master=_env("SEGMENTS_SPARK_MASTER", "local[2]"),
        spark_remote=_spark_remote(_env_raw("SEGMENTS_SPARK_REMOTE", "")),  # set and empty: no remote
        spark_driver_memory=_env("SEGMENTS_SPARK_DRIVER_MEMORY", "4g"),
        spark_executor_memory=_env("SEGMENTS_SPARK_EXECUTOR_MEMORY", "2g"),
        spark_shuffle_partitions=int(_env("SEGMENTS_SPARK_SHUFFLE_PARTITIONS", "64")),
        spark_profile=profile,
        spark_java_options=_env_raw("SEGMENTS_SPARK_JAVA_OPTIONS", SPARK_PROFILES[profile]),
        job_python=Path(_env("SEGMENTS_JOB_PYTHON", str(REPO_ROOT / ".venv" / "bin" / "python"))),
        model_name=_env("SEGMENTS_MODEL_NAME", "user_segmenter"),
        n_segments=_n_segments(_env("SEGMENTS_N_SEGMENTS", "6")),
        k_range=_k_range(_env("SEGMENTS_K_RANGE", "4-8")),
        segment_method=_choice("SEGMENTS_SEGMENT_METHOD", default_method(raw_tables), SEGMENT_METHODS),
        ensemble_seeds=int(_env("SEGMENTS_ENSEMBLE_SEEDS", "3")),
        train_epochs=int(_env("SEGMENTS_TRAIN_EPOCHS", "15")),
        seed=int(_env("SEGMENTS_SEED", "42")),
        airflow_parallelism=int(_env("SEGMENTS_AIRFLOW_PARALLELISM", "2")),
        # Raw partitions may hold events of up to this many earlier days; see jobs/features/planning.py.
        late_data_days=int(_env("SEGMENTS_LATE_DATA_DAYS", "2")),
        holiday_country=_env("SEGMENTS_HOLIDAY_COUNTRY", "US").upper(),
        raw_tables=raw_tables,
        churned_days=int(_env("SEGMENTS_CHURNED_DAYS", "180")),
        ingest_max_shrink=fraction(_env("SEGMENTS_INGEST_MAX_SHRINK", "0.5"), "SEGMENTS_INGEST_MAX_SHRINK"),
        ingest_shrink_min_rows=int(_env("SEGMENTS_INGEST_SHRINK_MIN_ROWS", "100")),
        gate_max_rejected=fraction(_env("SEGMENTS_GATE_MAX_REJECTED", "0.05"), "SEGMENTS_GATE_MAX_REJECTED"),
        gate_recent_days=int(_env("SEGMENTS_GATE_RECENT_DAYS", "7")),
        gate_volume_range=_ratio_range(_env("SEGMENTS_GATE_VOLUME_RANGE", "0.5-5"), "SEGMENTS_GATE_VOLUME_RANGE"),
        gate_max_scale=_number(_env("SEGMENTS_GATE_MAX_SCALE", "3"), "SEGMENTS_GATE_MAX_SCALE", 1.0, float("inf"),
                               "a number >= 1"),
        gate_max_mix_shift=fraction(_env("SEGMENTS_GATE_MAX_MIX_SHIFT", "0.15"), "SEGMENTS_GATE_MAX_MIX_SHIFT"),
        gate_min_rows=int(_env("SEGMENTS_GATE_MIN_ROWS", "50")),
    )


def spark_connection(master: str) -> str:
    """The Airflow connection ``spark_default`` (AIRFLOW_CONN_SPARK_DEFAULT) of a Spark master."""
    return json.dumps({"conn_type": "spark", "host": master, "extra": {"spark-binary": "spark-submit"}})


def spark_connect_address(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect URL ``sc://host[:port][/;param=value...]`` (port 15002 by default)."""
    netloc = remote.removeprefix("sc://").partition(";")[0].split("/", 1)[0]
    host, sep, port = netloc.rpartition(":")
    if not (sep and port.isdigit()):  # no port (or an IPv6 address alone): Spark Connect's default
        host, port = netloc, "15002"
    return host.strip("[]"), int(port)


def spark_connect_connection(remote: str) -> str:
    """The Airflow connection ``spark_connect_default`` (AIRFLOW_CONN_SPARK_CONNECT_DEFAULT) of a Spark
    Connect URL ``sc://host[:port][/;param=value...]``: the provider's SparkConnectHook.get_connection_url()
    gives ``sc://host:port/`` back. user_id, token and use_ssl become its login, password and extra; the hook
    has no field for other parameters."""
    host, port = spark_connect_address(remote)
    params = remote.partition(";")[2]
    conn: dict = {"conn_type": "spark_connect", "host": f"[{host}]" if ":" in host else host, "port": port}
    values = dict(p.split("=", 1) for p in params.split(";") if "=" in p)
    if "user_id" in values:
        conn["login"] = unquote(values["user_id"])
    if "token" in values:
        conn["password"] = unquote(values["token"])
    if "use_ssl" in values:
        conn["extra"] = {"use_ssl": values["use_ssl"]}
    return json.dumps(conn)


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """Environment for the Airflow processes of the platform (used by bin/airflow): the embedded one, or
    the local stack's while it is up (``stack_defaults``)."""
    s = settings or load()
    env = {
        "SEGMENTS_HOME": str(s.home),
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_SPARK_DEFAULT": os.environ.get("AIRFLOW_CONN_SPARK_DEFAULT",
                                                     spark_connection(s.spark_master)),
    }
    # A Spark Connect endpoint (the stack's, SEGMENTS_SPARK_REMOTE): the DAGs' Spark stages are its clients.
    if s.spark_remote:
        env["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"] = os.environ.get("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT",
                                                                   spark_connect_connection(s.spark_remote))
    # While the local stack is up: its Airflow settings (metadata database, executor, auth, ports) replace
    # the embedded ones; a variable set in the environment still wins. The Spark connections are not taken
    # from it: they follow the settings above (which default to the stack's), so SEGMENTS_SPARK_REMOTE= (set,
    # empty) also takes spark_connect_default away from the DAGs.
    derived = ("AIRFLOW_CONN_SPARK_DEFAULT", "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT")
    stack = {key: os.environ.get(key, "").strip() or value for key, value in stack_defaults(s.home).items()
             if key.startswith("AIRFLOW_") and key not in derived}
    return {**env, **stack}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--airflow-env"]:
        # Shell-quoted export lines; values already set in the environment win.
        import shlex

        for key, value in airflow_environment().items():
            print(f"export {key}={shlex.quote(os.environ.get(key) or value)}")
        return 0
    settings = load()
    for key, value in asdict(settings).items():
        print(f"{key} = {value}")
    if stack_defaults(settings.home):
        print(f"stack = {stack_env_path(settings.home)} (the local stack is up: its values are the defaults "
              "of the settings above; variables set in the environment win)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
