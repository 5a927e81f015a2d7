"""Benchmark of the feature stage: Spark (the real jobs) against DuckDB on the same Parquet files.

``make bench-features`` (or ``python -m bench.bench_features --users N --days D``):

1. seeds N users x D days into a bench platform root (``var/bench/<N>x<D>``), or reuses it;
2. (b) full rebuild: cleaning + ``user_daily`` over every raw partition in one Spark job (separate
   process, so the wall time includes Spark start), then DuckDB computing the same on the same files;
3. (a) daily run: the real runner, ``segments features --ds <last date>``, on the warehouse whose
   ``user_daily`` window now exists, after yesterday's run, made while the last date's raw partition was
   moved aside (untimed, so that the states a normal day merges from and the records of what each
   ``user_daily`` day was built from are those of a normal day); then DuckDB computing user_daily for the
   same raw partitions;
4. checks that both engines agree on a sample of users (every day, the core columns) and fails if not;
5. prints a table and writes ``results.json`` (plus the Spark stages and plans) in the bench root.

Each measured run is its own process: peak memory is the resident memory of its process tree (JVM and
Python workers), sampled from /proc. Spark runs write an event log, summarised into stages and plans.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import duckdb_mirror
from bench.measure import (
    RESULT_PREFIX,
    Measured,
    latest_event_log,
    run_measured,
    spark_event_log_env,
    summarize_event_log,
)
from core.settings import REPO_ROOT
from jobs.dates import shift

PYTHON = sys.executable
CODE_ROOT = Path(__file__).resolve().parent.parent  # the checkout whose jobs/ are measured
SEGMENTS = [PYTHON, "-m", "app.cli"]  # the CLI of that checkout (not whichever is installed)


@dataclass(frozen=True)
class Config:
    users: int
    days: int
    end_date: str
    home: Path
    threads: int
    sample_users: int

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def work(self) -> Path:
        return self.home / "bench"

    @property
    def dates(self) -> list[str]:
        end = dt.date.fromisoformat(self.end_date)
        return [(end - dt.timedelta(days=k)).isoformat() for k in range(self.days - 1, -1, -1)]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SEGMENTS_WAREHOUSE"}
        env["SEGMENTS_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(CODE_ROOT)
        env["SEGMENTS_SPARK_MASTER"] = f"local[{self.threads}]"
        env.update(extra)
        return env


class Step:
    """One numbered progress line per step, with its duration."""

    def __init__(self, total: int) -> None:
        self.total, self.number = total, 0

    def __call__(self, text: str) -> "Step":
        self.number += 1
        self.start = time.monotonic()
        print(f"[{self.number}/{self.total}] {text} ...", flush=True)
        return self

    def done(self, text: str) -> None:
        print(f"      {text} ({time.monotonic() - self.start:.1f}s)", flush=True)


# --- workers (run in their own process by the orchestrator) -------------------------------------
def worker_fit_params(ds: str) -> dict:
    """Fit and store the cleaning parameters as of ds when none are stored
    (``jobs.features.cleaning_params.load_params``), in their own process: on a fresh seed they would
    otherwise be fitted inside the timed rebuild."""
    started = time.monotonic()
    from core import settings
    from jobs.features import cleaning_params
    from jobs.session import build_spark

    if cleaning_params.latest_params_ds(ds) is not None:
        return {"fitted": False}
    spark = build_spark("bench-cleaning-params")
    cleaning_params.load_params(spark, ds, settings.load().late_data_days)
    spark.stop()
    return {"fitted": True, "seconds": round(time.monotonic() - started, 1)}


def worker_spark_rebuild(first: str, last: str) -> dict:
    """Rebuild user_daily.user_daily for every true day in [first, last] in one job, as a backfill does:
    the runner's own plan (jobs.features.planning.plan_run with rebuild_from) and its cleaning + user_daily step."""
    started = time.monotonic()
    from core import settings
    from jobs.dates import shift
    from jobs.features import cleaning_params, planning, user_daily
    from jobs.session import build_spark
    spark = build_spark("bench-user-daily-rebuild")
    session_s = time.monotonic() - started
    late_days = settings.load().late_data_days
    fit_start = time.monotonic()
    params = cleaning_params.load_params(spark, shift(last, -1), late_days)  # stored by worker_fit_params
    params_s = time.monotonic() - fit_start
    plan = planning.plan_run(last, late_days, params.fit_ds, rebuild_from=first)
    job_start = time.monotonic()
    user_daily.build_user_daily(spark, plan, params, late_days)
    job_s = time.monotonic() - job_start
    spark.stop()
    return {"session_s": round(session_s, 2), "params_s": round(params_s, 2), "job_s": round(job_s, 2),
            "build_days": plan.build_days, "read_partitions": plan.read_partitions}


def stored_caps(warehouse: Path, ds: str) -> dict[str, float]:
    """The raw.events winsorisation caps the Spark run used (latest features.cleaning_params <= ds)."""
    import pyarrow.parquet as pq

    root = warehouse / "features" / "cleaning_params"
    fitted = sorted(p.name[3:] for p in root.glob("ds=*") if p.name[3:] <= ds) if root.is_dir() else []
    if not fitted:
        return {}
    rows = pq.read_table(root / f"ds={fitted[-1]}").to_pylist()
    return {r["column_name"]: r["value"] for r in rows
            if r["table_name"] == "raw.events" and r["param"] == "upper_cap" and r["value"] is not None}


def worker_duckdb(home: str, read_partitions: list[str], build_days: list[str], out_dir: str,
                  threads: int) -> dict:
    """DuckDB computing user_daily for ``build_days`` from the raw partitions, written as Parquet."""
    from core import settings

    warehouse = Path(home) / "warehouse"
    caps = stored_caps(warehouse, build_days[-1])
    started = time.monotonic()
    con = duckdb_mirror.connect(threads, Path(home) / "tmp" / "duckdb")
    sql = duckdb_mirror.user_daily_sql(warehouse / "raw", read_partitions, build_days, caps,
                                       settings.load().late_data_days)
    rows = duckdb_mirror.write_user_daily(con, sql, Path(out_dir))
    return {"job_s": round(time.monotonic() - started, 2), "rows": rows, "caps": caps}


# --- orchestration --------------------------------------------------------------------------------
def events_in(cfg: Config, dates: list[str]) -> int:
    """Rows of raw.events in those partitions (Parquet footers; no scan)."""
    import pyarrow.parquet as pq

    root = cfg.warehouse / "raw" / "events"
    return sum(pq.ParquetFile(f).metadata.num_rows for d in dates for f in (root / f"ds={d}").glob("*.parquet"))


def ensure_seeded(cfg: Config) -> str:
    marker = cfg.home / "bench-seed.json"
    wanted = {"users": cfg.users, "days": cfg.days, "end_date": cfg.end_date}
    if marker.exists():
        found = json.loads(marker.read_text())
        if found != wanted:
            raise SystemExit(f"error: {cfg.home} was seeded with {found}, not {wanted}\n"
                             f"hint: pick another BENCH_HOME or delete that directory")
        return "reused"
    if cfg.warehouse.exists():
        raise SystemExit(f"error: {cfg.warehouse} exists but has no {marker.name} (an interrupted seed?)\n"
                         f"hint: delete {cfg.home} and rerun")
    import subprocess

    subprocess.run([*SEGMENTS, "seed", "--users", str(cfg.users), "--days", str(cfg.days),
                    "--end-date", cfg.end_date], env=cfg.env(), check=True)
    marker.write_text(json.dumps(wanted))
    return "seeded"


def spark_run(cfg: Config, name: str, cmd: list[str]) -> tuple[Measured, dict]:
    log_dir = cfg.work / "eventlog" / name
    shutil.rmtree(log_dir, ignore_errors=True)
    measured = run_measured(cmd, cfg.env(**spark_event_log_env(log_dir)), cfg.work / "logs" / f"{name}.log")
    tables = {t: str(cfg.warehouse / t.replace(".", "/")) for t in
              ("raw.events", "raw.orders", "raw.users", "features.user_daily", "features.user_lifetime",
               "features.user_window", "features.user_category_window", "features.user_features")}
    summary = summarize_event_log(latest_event_log(log_dir), tables)
    return measured, summary


def duckdb_run(cfg: Config, name: str, read_partitions: list[str], build_days: list[str]) -> tuple[Measured, Path]:
    out = cfg.work / f"duckdb_{name}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [PYTHON, "-m", "bench.bench_features", "_duckdb", str(cfg.home), json.dumps(read_partitions),
           json.dumps(build_days), str(out), str(cfg.threads)]
    return run_measured(cmd, cfg.env(), cfg.work / "logs" / f"duckdb_{name}.log"), out


def check(cfg: Config, label: str, duck_out: Path, dates: list[str]) -> dict:
    con = duckdb_mirror.connect(cfg.threads)
    users = duckdb_mirror.sample_users(con, cfg.warehouse / "raw" / "users", cfg.end_date, cfg.sample_users)
    compared, mismatches = duckdb_mirror.compare(
        con, cfg.warehouse / "features" / "user_daily", duck_out, dates, users)
    if mismatches:
        print(f"\nFAILED: Spark and DuckDB disagree on {len(mismatches)} of {compared} sampled rows ({label}):",
              file=sys.stderr)
        for line in mismatches[:20]:
            print("  " + line, file=sys.stderr)
        raise SystemExit(1)
    if compared == 0:
        raise SystemExit(f"FAILED: the sample of {len(users)} users has no rows to compare ({label})")
    return {"users": len(users), "rows": compared, "columns": list(duckdb_mirror.CORE_COLUMNS)}


def daily_plan(cfg: Config, ds: str):
    """The runner's plan for ``segments features --ds`` on this warehouse (jobs.features.planning.plan_run)."""
    from core import settings
    from jobs.features import cleaning_params, planning

    os.environ["SEGMENTS_HOME"] = str(cfg.home)  # catalog paths of the bench platform
    os.environ.pop("SEGMENTS_WAREHOUSE", None)
    return planning.plan_run(ds, settings.load().late_data_days, cleaning_params.latest_params_ds(ds))


def not_arrived(cfg: Config, ds: str) -> contextlib.AbstractContextManager:
    """The raw partitions of ``ds`` moved aside while the block runs, as if they had not arrived yet."""
    stash = cfg.work / "not_arrived"

    def move(src_root: Path, dst_root: Path) -> None:
        for name in ("events", "orders", "users"):
            src = src_root / name / f"ds={ds}"
            if src.is_dir():
                (dst_root / name).mkdir(parents=True, exist_ok=True)
                src.rename(dst_root / name / f"ds={ds}")

    @contextlib.contextmanager
    def hidden():
        move(cfg.warehouse / "raw", stash)
        try:
            yield
        finally:
            move(stash, cfg.warehouse / "raw")

    move(stash, cfg.warehouse / "raw")  # an interrupted earlier bench left them aside
    return hidden()


def raw_scans(summary: dict) -> list[dict]:
    return [s for e in summary["executions"] for s in e["scans"] if s["table"] == "raw.events"]


def rebuilt_dates(cfg: Config, since: float) -> list[str]:
    """user_daily partitions written after ``since`` (what the daily run rebuilt)."""
    root = cfg.warehouse / "features" / "user_daily"
    return sorted(p.name[3:] for p in root.glob("ds=*")
                  if any(f.stat().st_mtime >= since for f in p.glob("*.parquet")))


def row(name: str, events: int, spark: Measured, spark_s: float, duck: Measured) -> dict:
    return {
        "run": name, "events_read": events,
        "spark_wall_s": round(spark.wall_s, 1), "spark_job_s": round(spark_s, 1),
        "spark_events_per_s": round(events / spark.wall_s),
        "spark_peak_mb": round(spark.peak_mb), "spark_peak_jvm_mb": round(spark.peak_jvm_mb),
        "spark_peak_python_mb": round(spark.peak_python_mb),
        "spark_cpu_s": round(spark.cpu_s, 1), "spark_load_before": round(spark.load_before, 1),
        "duckdb_wall_s": round(duck.wall_s, 1), "duckdb_job_s": duck.result["job_s"],
        "duckdb_events_per_s": round(events / duck.wall_s), "duckdb_peak_mb": round(duck.peak_mb),
        "duckdb_cpu_s": round(duck.cpu_s, 1), "duckdb_load_before": round(duck.load_before, 1),
        "ratio_wall": round(spark.wall_s / duck.wall_s, 2),
        "ratio_job": round(spark_s / duck.result["job_s"], 2),
    }


def print_table(rows: list[dict]) -> None:
    cols = [  # header, width, how to show one result row
        ("run", 26, lambda r: r["run"]),
        ("events", 12, lambda r: f"{r['events_read']:,}"),
        ("Spark s", 9, lambda r: f"{r['spark_wall_s']:.1f}"),
        ("job s", 7, lambda r: f"{r['spark_job_s']:.1f}"),
        ("CPU s", 7, lambda r: f"{r['spark_cpu_s']:.0f}"),
        ("events/s", 11, lambda r: f"{r['spark_events_per_s']:,}"),
        ("peak MB JVM+py", 16, lambda r: f"{r['spark_peak_jvm_mb']:,}+{r['spark_peak_python_mb']:,}"),
        ("DuckDB s", 10, lambda r: f"{r['duckdb_wall_s']:.1f}"),
        ("CPU s", 7, lambda r: f"{r['duckdb_cpu_s']:.0f}"),
        ("events/s", 12, lambda r: f"{r['duckdb_events_per_s']:,}"),
        ("peak MB", 9, lambda r: f"{r['duckdb_peak_mb']:,}"),
        ("Spark/DuckDB", 13, lambda r: f"{r['ratio_wall']:.2f}"),
        ("(job)", 7, lambda r: f"{r['ratio_job']:.2f}"),
        ("load", 6, lambda r: f"{r['spark_load_before']:.1f}"),
    ]
    line = "".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w, _) in enumerate(cols))
    print("\n" + line + "\n" + "-" * len(line))
    for r in rows:
        print("".join(f"{f(r):<{w}}" if i == 0 else f"{f(r):>{w}}" for i, (_, w, f) in enumerate(cols)))
    print(textwrap.fill(
        "Spark s / DuckDB s: process wall time, Spark's including JVM start (daily: the median run; CPU s and "
        "peak are that run's); job s: without it (rebuild: the job alone; daily: the Spark application's "
        "lifetime in the rerun with the event log); CPU s: user+system of the process tree; load: 1-min load "
        "average before the Spark run (>2: something else ran, the figures are inflated). The rebuild is "
        "timed with the event log on, the daily run without it.", 110))


def print_plans(label: str, summary: dict) -> None:
    for e in summary["executions"]:
        nodes = ", ".join(f"{k} {v}" for k, v in sorted(e["nodes"].items()))
        print(f"      plan {label}#{e['execution']}: {nodes}")
        for s in e["scans"]:
            print(f"        scan {s['table']}: {s['partitions_read']} partitions, {s['rows']:,} rows, "
                  f"PartitionFilters {s['partition_filters']}")


def main_run(args: argparse.Namespace) -> int:
    # Long on purpose: the benchmark's numbered steps in the order they run and print, a few lines each.
    home = Path(args.home or REPO_ROOT / "var" / "bench" / f"{args.users}x{args.days}").resolve()
    cfg = Config(args.users, args.days, args.end_date, home, args.threads, args.sample_users)
    step = Step(9)
    results: dict = {"config": {**asdict(cfg), "home": str(home)}}

    step(f"seed {cfg.users:,} users x {cfg.days} days into {home}")
    how = ensure_seeded(cfg)
    all_events = events_in(cfg, cfg.dates)
    step.done(f"{how}: {all_events:,} events in raw.events")

    step(f"(b) Spark: full rebuild of user_daily.user_daily over {cfg.days} days (one job, new process)")
    # Fitted once and stored, as of the day before the last: between two weekly refits yesterday's run and
    # today's (step (a)) use the same parameters, as in production, where a refit rebuilds the lookback.
    fit = run_measured([PYTHON, "-m", "bench.bench_features", "_fit_params", shift(cfg.dates[-1], -1)],
                       cfg.env(), cfg.work / "logs" / "spark_fit_params.log").result
    if fit["fitted"]:
        print(f"      cleaning parameters fitted first, in their own process (untimed, {fit['seconds']}s)")
    rebuild, rebuild_log = spark_run(cfg, "spark_rebuild", [PYTHON, "-m", "bench.bench_features",
                                                           "_spark_rebuild", cfg.dates[0], cfg.dates[-1]])
    step.done(f"wall {rebuild.wall_s:.1f}s (Spark start {rebuild.result['session_s']}s, cleaning params "
              f"{rebuild.result['params_s']}s, job {rebuild.result['job_s']}s), peak {rebuild.peak_mb:,.0f} MB")
    print_plans("rebuild", rebuild_log)

    step("(b) DuckDB: the same cleaning and aggregation on the same files")
    duck_rebuild, duck_rebuild_out = duckdb_run(cfg, "rebuild", rebuild.result["read_partitions"],
                                                rebuild.result["build_days"])
    step.done(f"wall {duck_rebuild.wall_s:.1f}s (query+write {duck_rebuild.result['job_s']}s), "
              f"{duck_rebuild.result['rows']:,} rows, peak {duck_rebuild.peak_mb:,.0f} MB")

    step(f"(b) check: {cfg.sample_users} sampled users x {cfg.days} days, both engines")
    results["check_rebuild"] = check(cfg, "rebuild", duck_rebuild_out, cfg.dates)
    step.done(f"{results['check_rebuild']['rows']:,} rows identical on {len(duckdb_mirror.CORE_COLUMNS)} columns")

    ds = cfg.end_date
    previous = cfg.dates[-2]
    # A normal day finds yesterday's run done, before today's raw partition arrived: its lifetime and
    # window states exist, so the run updates them incrementally, and the user_daily days it built record
    # their raw partitions, so the run rebuilds only the days today's partition has rows for. The first run
    # on a warehouse rebuilds the states from all of user_daily instead; that one-off is not the daily run,
    # so it is done here, untimed, with today's partition moved aside.
    step(f"(a) prepare: yesterday's run `segments features --ds {previous}`, before {ds}'s raw partition "
         "arrives (untimed: stores the states and records a normal day starts from)")
    with not_arrived(cfg, ds):
        run_measured([*SEGMENTS, "features", "--ds", previous], cfg.env(),
                     cfg.work / "logs" / "spark_previous_day.log")
    inputs = cfg.warehouse / "features" / "user_daily_inputs"
    recorded = cfg.work / "user_daily_inputs_after_previous_day"
    shutil.rmtree(recorded, ignore_errors=True)
    shutil.copytree(inputs, recorded)
    step.done("done")

    def as_yesterday_left_it() -> None:
        shutil.rmtree(inputs)
        shutil.copytree(recorded, inputs)

    runs = args.daily_runs
    step(f"(a) Spark: daily run `segments features --ds {ds}`, {runs} time{'s' if runs > 1 else ''} "
         "(the real runner, a new process each, each from the records of yesterday's run)")
    plan = daily_plan(cfg, ds)  # what the runner is about to do, from its own planner
    timed = []
    for i in range(runs):
        as_yesterday_left_it()  # so that every run rebuilds the same days
        since = time.time() - 1
        # Timed as it runs in production, without the event log; a run below writes one for the plans.
        timed.append(run_measured([*SEGMENTS, "features", "--ds", ds], cfg.env(),
                                  cfg.work / "logs" / f"spark_daily_{i + 1}.log"))
        built = rebuilt_dates(cfg, since)
        if built != plan.build_days:
            print(f"      warning: the runner rewrote user_daily {built}, its plan said {plan.build_days}")
    # The median run stands for the daily run (a single run on a shared VM varies by several seconds).
    daily = sorted(timed, key=lambda m: m.wall_s)[len(timed) // 2]
    walls = [round(m.wall_s, 1) for m in timed]
    daily_events = events_in(cfg, plan.read_partitions)
    step.done(f"wall {daily.wall_s:.1f}s (median of {walls}), peak {daily.peak_mb:,.0f} MB; rebuilt "
              f"user_daily {plan.build_days} from raw {plan.read_partitions}; kept {plan.kept_days} (their "
              "inputs had not changed)")

    step("(a) plans: the same run again with the Spark event log (untimed; from the records of "
         "yesterday's run, so it replaces the same partitions)")
    as_yesterday_left_it()
    instrumented, daily_log = spark_run(cfg, "spark_daily_eventlog", [*SEGMENTS, "features", "--ds", ds])
    scans = raw_scans(daily_log)
    step.done(f"wall {instrumented.wall_s:.1f}s with the event log; raw.events scans read "
              f"{[s['partitions_read'] for s in scans]} partitions")
    print_plans("daily", daily_log)

    step("(a) DuckDB: user_daily for the same days from the same raw partitions")
    duck_daily, duck_daily_out = duckdb_run(cfg, "daily", plan.read_partitions, plan.build_days)
    step.done(f"wall {duck_daily.wall_s:.1f}s (query+write {duck_daily.result['job_s']}s)")

    step(f"(a) check: {cfg.sample_users} sampled users on {plan.build_days}")
    results["check_daily"] = check(cfg, "daily", duck_daily_out, plan.build_days)
    step.done(f"{results['check_daily']['rows']:,} rows identical")

    # The daily run's 'job' figure is the Spark application's lifetime (session up to stop) from the event
    # log of the instrumented rerun, the only run that has one.
    daily_job_s = daily_log["app_seconds"] or instrumented.wall_s
    results["runs"] = [
        row(f"(a) daily ds={ds}", daily_events, daily, daily_job_s, duck_daily),
        row(f"(b) rebuild {cfg.days} days", all_events, rebuild, rebuild.result["job_s"], duck_rebuild),
    ]
    results["spark_rebuild"] = {**rebuild.result, **rebuild_log}
    results["spark_daily"] = {"build_days": plan.build_days, "kept_days": plan.kept_days,
                              "wall_s_runs": walls,
                              "read_partitions": plan.read_partitions,
                              "instrumented_wall_s": round(instrumented.wall_s, 1), **daily_log}
    print_table(results["runs"])
    out = home / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\nresults, Spark stages and plans: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_fit_params":
        print(RESULT_PREFIX + json.dumps(worker_fit_params(argv[1])), flush=True)
        return 0
    if argv and argv[0] == "_spark_rebuild":
        print(RESULT_PREFIX + json.dumps(worker_spark_rebuild(argv[1], argv[2])), flush=True)
        return 0
    if argv and argv[0] == "_duckdb":
        home, read_partitions, build_days, out, threads = argv[1:6]
        result = worker_duckdb(home, json.loads(read_partitions), json.loads(build_days), out, int(threads))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="bench-features", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--end-date", default="2026-06-30")
    parser.add_argument("--home", default=None, help="bench platform root (default var/bench/<users>x<days>)")
    parser.add_argument("--threads", type=int, default=2, help="Spark local[threads] and DuckDB threads")
    parser.add_argument("--sample-users", type=int, default=200)
    parser.add_argument("--daily-runs", type=int, default=3,
                        help="times the daily run (a) is timed; the median is reported (default 3)")
    args = parser.parse_args(argv)
    if args.daily_runs < 1:
        parser.error("--daily-runs must be at least 1")
    return main_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
