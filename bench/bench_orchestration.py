"""What orchestration costs per date: the daily DAG against the work it orchestrates.

``make bench-orchestration`` runs both parts; ``--part dag`` or ``--part backfill`` one of them.

1. **dag**: the wall time of one run of the daily DAG (``airflow dags test segment_users_daily D``, real
   tasks, in-process scheduler loop) on a small warehouse (``--dag-users``, default 300), alternated in one
   session: a baseline git ref, and this checkout twice, with a driver per run (spark-submit) and as a client
   of a long-lived Spark Connect server (the stack's design; started untimed, its first run printed apart).
   Prepares ``var/bench/orchestration-dag-<N>`` once (seed, features, train, the day before), and restores
   its state before each run.
2. **backfill**: a backfill of ``--dates`` dates (default 14) of a ``--backfill-users`` (default 20,000)
   warehouse through the real scheduler of the stack (``bin/backfill``, one date at a time), against
   ``segments run`` of the same dates in a shell loop, on the same stack (its Spark Connect server, warmed
   by one untimed run; its MLflow server and BI database) and from the same state. Brings a stack up under
   ``var/bench/orchestration-backfill-<N>`` (databases ``segments_bench_*``) and down at the end.

Prints each figure and the ratios. The machine's speed drifts between sessions: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_daily import prepare, restore
from bench.bench_features import CODE_ROOT, PYTHON, Config, Step
from core.settings import REPO_ROOT
from jobs.dates import shift

AIRFLOW_CLI = "bin/airflow"


def _airflow_env(cfg: Config, code: Path, label: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``bin/airflow`` of the checkout at ``code`` on the bench platform (its own
    SQLite metadata database per variant)."""
    # INFO: each run's log (bench/logs/dag-*.log) holds the task's stage lines with their times, also when it
    # failed (bin/airflow's WARNING leaves `dags test` logs empty).
    env = cfg.env(PYTHONPATH=str(code), AIRFLOW_HOME=str(cfg.work / f"airflow-{label}"),
                  AIRFLOW__CORE__DAGS_FOLDER=str(code / "dags"), AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
                  **(extra or {}))
    env.pop("SEGMENTS_SPARK_MASTER", None)  # the DAG's Spark connection decides
    return env


def _worktree(ref: str) -> Path:
    """The baseline checked out beside this one, sharing its environments."""
    path = Path(tempfile.mkdtemp(prefix="bench-orchestration-baseline-"))
    subprocess.run(["git", "-C", str(CODE_ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True)
    for venv in (".venv", ".venv-airflow"):
        (path / venv).symlink_to(CODE_ROOT / venv)
    return path


def _run_state(cfg: Config, code: Path, label: str, extra: dict[str, str]) -> str:
    """The state of the latest run of the daily DAG for cfg.end_date (`dags test` prints little at WARNING)."""
    out = subprocess.run([str(code / AIRFLOW_CLI), "dags", "list-runs", "segment_users_daily", "-o", "json"],
                         env=_airflow_env(cfg, code, label, extra), capture_output=True, text=True,
                         check=True).stdout
    runs = json.loads(next(line for line in out.splitlines() if line.startswith("[")))
    mine = [r for r in runs if (r["logical_date"] or "").startswith(cfg.end_date)]
    return max(mine, key=lambda r: r["run_after"])["state"] if mine else "missing"


def bench_dag(args: argparse.Namespace) -> dict[str, float]:
    from app import stack

    home = (args.home or REPO_ROOT / "var" / "bench" / f"orchestration-dag-{args.dag_users}").resolve()
    cfg = Config(args.dag_users, args.days, args.end_date, home, threads=2, sample_users=0)
    snapshot = cfg.work / f"state-before-{cfg.end_date}"
    (cfg.work / "logs").mkdir(parents=True, exist_ok=True)
    prepare(cfg, snapshot)
    baseline = _worktree(args.baseline)
    # The stack's Spark Connect server on local[2] (the master the baseline's spark-submit uses), started untimed
    # like the stack's.
    server, url = stack.start_connect_server(cfg.work / "spark-connect", master="local[2]")
    # (label, checkout, extra environment): this checkout twice, spark-submit per run and the long-lived
    # Spark Connect endpoint (the stack's design: the connection spark_connect_default).
    variants = [("baseline", baseline, {}), ("current", CODE_ROOT, {}),
                ("current-connect", CODE_ROOT, {"SEGMENTS_SPARK_REMOTE": url})]
    walls: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    try:
        for label, code, extra in variants:
            env = _airflow_env(cfg, code, label, extra)
            subprocess.run([str(code / AIRFLOW_CLI), "db", "migrate"], env=env, check=True, capture_output=True)
        # Round 0 is the Spark Connect server's first run (its JVM cold: classes loaded and compiled on first
        # use): printed, not counted. A server that ran yesterday's date is past it.
        for r in range(0, args.rounds + 1):
            for label, code, extra in variants if r else variants[2:]:
                restore(cfg, snapshot)
                log = cfg.work / "logs" / f"dag-{label}-{r}.log"
                command = [str(code / AIRFLOW_CLI), "dags", "test", "segment_users_daily", cfg.end_date]
                t0 = time.monotonic()
                with log.open("w") as out:
                    done = subprocess.run(command, env=_airflow_env(cfg, code, label, extra), stdout=out,
                                          stderr=subprocess.STDOUT, cwd=code)
                wall = time.monotonic() - t0
                ok = done.returncode == 0 and _run_state(cfg, code, label, extra) == "success"
                what = f"round {r}" if r else "first run of the new Spark Connect server, not counted"
                print(f"  dag {label} {what}: {wall:.1f}s{'' if ok else ' (FAILED: see ' + str(log) + ')'}",
                      flush=True)
                if not ok:
                    raise SystemExit(1)
                if r:
                    walls[label].append(wall)
    finally:
        stack.stop_group(server)
        subprocess.run(["git", "-C", str(CODE_ROOT), "worktree", "remove", "--force", str(baseline)], check=False)
    old = statistics.median(walls["baseline"])
    medians = {label: statistics.median(w) for label, w in walls.items()}
    rows = "".join(f"| {name} | {medians[label]:.1f} | {medians[label] / old:.2f} |\n" for label, name in (
        ("baseline", f"baseline {args.baseline}, spark-submit per run"),
        ("current", "this checkout, spark-submit per run"),
        ("current-connect", "this checkout, Spark Connect endpoint")))
    print(f"\nthe daily DAG for one date (airflow dags test), {cfg.users:,} users x {cfg.days} days, median of "
          f"{args.rounds} rounds:\n| code | wall s | / baseline |\n|---|---|---|\n{rows}", flush=True)
    return {"dag_baseline_s": old, "dag_current_s": medians["current"], "dag_connect_s": medians["current-connect"],
            "dag_ratio": medians["current-connect"] / old}


def bench_backfill(args: argparse.Namespace) -> dict[str, float]:
    from app import stack

    home = (args.home or REPO_ROOT / "var" / "bench" / f"orchestration-backfill-{args.backfill_users}").resolve()
    cfg = Config(args.backfill_users, args.days, args.end_date, home, threads=2, sample_users=0)
    dates = [shift(cfg.end_date, -k) for k in range(args.dates - 1, -1, -1)]
    snapshot = cfg.work / f"state-before-{dates[0]}"
    cfg.work.mkdir(parents=True, exist_ok=True)
    os.environ["SEGMENTS_HOME"] = str(home)
    stack.up(stack.StackConfig.from_env(home=home, prefix="segments_bench", ports=stack.free_ports()))
    env = {k: v for k, v in cfg.env().items() if k not in ("SEGMENTS_SPARK_MASTER", "PYTHONPATH")}
    segments = [PYTHON, "-m", "app.cli", "-q"]
    try:
        if not snapshot.is_dir():
            step = Step(3)
            step(f"seeding {cfg.users:,} users x {cfg.days} days into {home}")
            subprocess.run([*segments, "seed", "--users", str(cfg.users), "--days", str(cfg.days), "--end-date",
                            cfg.end_date], env=env, check=True, cwd=CODE_ROOT)
            step.done("seeded")
            step(f"features, training and the run of {shift(dates[0], -1)} with {len(dates)} days not arrived")
            hidden = _hide(cfg, dates)
            try:
                train_env = {**env, "SEGMENTS_TRAIN_EPOCHS": "2", "SEGMENTS_ENSEMBLE_SEEDS": "1"}
                for command in (["features"], ["train"], ["run"]):
                    subprocess.run([*segments, *command, "--ds", shift(dates[0], -1)], env=train_env, check=True,
                                   cwd=CODE_ROOT)
            finally:
                _unhide(cfg, hidden)
            step.done("ready")
            step(f"snapshot -> {snapshot}")
            shutil.copytree(home, snapshot, ignore=lambda d, names: [n for n in names if Path(d) == home and n in (
                cfg.work.name, "stack")] + (["raw"] if Path(d) == cfg.warehouse else []))
            step.done("saved")

        # Both phases should find the Spark Connect server warm: its first run pays the cold JVM (the dag
        # part prints that apart), and it would otherwise count against the loop, which runs first.
        print(f"warming the Spark Connect server: segments run --ds {shift(dates[0], -1)} (not timed)", flush=True)
        subprocess.run([*segments, "run", "--ds", shift(dates[0], -1)], env=env, check=True, cwd=CODE_ROOT,
                       stdout=subprocess.DEVNULL)
        restore_state(cfg, snapshot)
        print(f"shell loop: segments run for {dates[0]} .. {dates[-1]} ...", flush=True)
        t0 = time.monotonic()
        for ds in dates:
            subprocess.run([*segments, "run", "--ds", ds], env=env, check=True, cwd=CODE_ROOT,
                           stdout=subprocess.DEVNULL)
        loop = time.monotonic() - t0
        print(f"  {loop:.0f}s ({loop / len(dates):.1f}s per date)", flush=True)

        restore_state(cfg, snapshot)
        print(f"bin/backfill --from {dates[0]} --to {dates[-1]} --reprocess completed ...", flush=True)
        t0 = time.monotonic()
        subprocess.run([str(CODE_ROOT / "bin" / "backfill"), "--from", dates[0], "--to", dates[-1], "--reprocess",
                        "completed", "--unpause", "--poll", "2"], env=env, check=True, cwd=CODE_ROOT)
        backfill = time.monotonic() - t0
        print(f"  {backfill:.0f}s ({backfill / len(dates):.1f}s per date)", flush=True)
    finally:
        if not args.keep_stack:
            stack.down(home)
    print(f"\n{len(dates)} dates of {cfg.users:,} users on the stack:\n| how | wall s | per date s |\n|---|---|---|\n"
          f"| segments run, shell loop | {loop:.0f} | {loop / len(dates):.1f} |\n"
          f"| bin/backfill through the scheduler | {backfill:.0f} | {backfill / len(dates):.1f} |\n"
          f"ratio backfill / loop: {backfill / loop:.2f}", flush=True)
    return {"loop_s": loop, "backfill_s": backfill, "backfill_ratio": backfill / loop}


def _hide(cfg: Config, dates: list[str]) -> list[tuple[Path, Path]]:
    """Move the raw partitions of ``dates`` aside (not arrived yet); return the moves to undo."""
    moves = []
    for name in ("events", "orders", "users"):
        for ds in dates:
            src = cfg.warehouse / "raw" / name / f"ds={ds}"
            if src.is_dir():
                dst = cfg.work / "not_arrived" / name / f"ds={ds}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.rename(dst)
                moves.append((src, dst))
    return moves


def _unhide(cfg: Config, moves: list[tuple[Path, Path]]) -> None:
    for src, dst in moves:
        dst.rename(src)


def restore_state(cfg: Config, snapshot: Path) -> None:
    """The snapshot's warehouse state (the raw tables and the running stack's files stay)."""
    for child in cfg.warehouse.iterdir():
        if child.name != "raw":
            shutil.rmtree(child)
    for child in snapshot.iterdir():
        target = cfg.home / child.name
        if child.is_dir():
            if target.exists() and child.name != "warehouse":
                shutil.rmtree(target)
            shutil.copytree(child, target, dirs_exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("dag", "backfill", "all"), default="all")
    p.add_argument("--baseline", default="HEAD", help="git ref of the code the DAG is compared with")
    p.add_argument("--dag-users", type=int, default=300)
    p.add_argument("--backfill-users", type=int, default=20_000)
    p.add_argument("--dates", type=int, default=14, help="dates of the backfill (default 14)")
    p.add_argument("--days", type=int, default=100, help="days of history seeded")
    p.add_argument("--end-date", default="2026-06-30")
    p.add_argument("--rounds", type=int, default=2, help="DAG runs of each checkout, alternated (default 2)")
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--keep-stack", action="store_true", help="leave the backfill's stack up (make down later)")
    args = p.parse_args(argv)
    if args.part in ("dag", "all"):
        bench_dag(args)
    if args.part in ("backfill", "all"):
        bench_backfill(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
