"""Scoring benchmark: users/s of the score stage inside Spark (target >= 5,000 users/s on local[2]).

    make bench-score                      # 50k users under var/bench/score
    .venv/bin/python bench/score.py --users 3000 --home /tmp/bench-score

Prepares the warehouse once if it is missing (seed -> features for ds -> one quick training, each a
`segments` subprocess so their Spark sessions do not count), then, in this process:
  1. starts Spark (timed: "Spark start"),
  2. runs the score stage for ds (`jobs.score.score`: registry + schema check, read features, mapInPandas
     with the champion, write segments.user_segments, count) -> users/s excluding Spark start,
  3. reports users/s including Spark start, and
  4. scores once more in the same session (Python workers and their loaded model are reused): the
     steady-state rate of a long-lived session.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> None:
    cmd = [sys.executable, "-m", "app.cli", "-q", *args]
    print("  $ segments " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)


def prepare(users: int, days: int, ds: str, epochs: int) -> None:
    """Seed, build features for ds and train a champion, each only if missing."""
    from core import warehouse
    from core.model_registry import champion_version, configure_mlflow

    if ds not in warehouse.partitions("features.user_features"):
        if not warehouse.partitions("raw.events"):
            _run("seed", "--users", str(users), "--days", str(days), "--end-date", ds)
        _run("features", "--ds", ds)
    configure_mlflow()
    if champion_version() is None:
        _run("train", "--ds", ds, "--epochs", str(epochs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000, help="users to seed if missing (default 50000)")
    parser.add_argument("--days", type=int, default=100, help="days of history to seed (default 100)")
    parser.add_argument("--ds", default="2026-06-30", help="date to score (default 2026-06-30)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the one training (default 2)")
    parser.add_argument("--home", default=str(REPO_ROOT / "var" / "bench" / "score"),
                        help="SEGMENTS_HOME of the benchmark warehouse (default var/bench/score)")
    args = parser.parse_args(argv)

    os.environ["SEGMENTS_HOME"] = str(Path(args.home).resolve())
    # The teacher does not affect scoring cost: a fixed k and the cheap method keep the one training short.
    os.environ.setdefault("SEGMENTS_N_SEGMENTS", "6")
    os.environ.setdefault("SEGMENTS_SEGMENT_METHOD", "feature_kmeans")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"SEGMENTS_HOME={os.environ['SEGMENTS_HOME']}", flush=True)
    prepare(args.users, args.days, args.ds, args.epochs)

    from core import settings
    from jobs.score import resolve_champion, score
    from jobs.session import build_spark

    t0 = time.perf_counter()
    spark = build_spark("bench-score")
    spark.range(1).count()  # the JVM and the first job are up: Spark start ends here
    t1 = time.perf_counter()
    summary = score(spark, args.ds, resolve_champion(args.ds))
    t2 = time.perf_counter()
    warm = score(spark, args.ds)
    t3 = time.perf_counter()
    spark.stop()

    n = summary.users
    stage, start, again = t2 - t1, t1 - t0, t3 - t2
    print(f"master {settings.load().spark_master}, {n} users, {summary.model_name} v{summary.model_version}")
    print(f"Spark start                  {start:7.1f} s")
    print(f"score stage (first run)      {stage:7.1f} s  -> {n / stage:8.0f} users/s excluding Spark start")
    print(f"Spark start + score stage    {start + stage:7.1f} s  -> {n / (start + stage):8.0f} users/s including Spark start")
    print(f"score stage again (warm)     {again:7.1f} s  -> {warm.users / again:8.0f} users/s (workers reused)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
