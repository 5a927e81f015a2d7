"""Benchmark of the whole daily run, ``segments run --ds D``: this checkout against a baseline git ref.

``make bench-daily`` (or ``python -m bench.bench_daily --users N --days D --baseline REF``):

1. prepares, once, a platform in ``var/bench/daily-<N>x<D>``: seeds N users x D days; with the last day's
   raw partitions moved aside (not arrived yet), builds the features, trains a model
   (SEGMENTS_TRAIN_EPOCHS=2, one student: the run's cost is measured, not the model's quality) and runs
   the chain for the day before; then snapshots everything but the raw tables: the state a normal day
   starts from;
2. checks the baseline out into a temporary git worktree (its code, this checkout's environment);
3. for each round, baseline then this checkout: restores the snapshot and times ``segments run --ds <last
   day>`` in its own process (wall time, and CPU of the process tree, JVM included);
4. prints each run's stage times, the medians, and the ratio this checkout / baseline (wall and CPU).

The machine's speed drifts between sessions: only the ratio of runs alternated in one session means
something.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_features import CODE_ROOT, PYTHON, Config, Step, not_arrived
from bench.measure import run_measured
from core.settings import REPO_ROOT
from jobs.dates import shift

_STAGE = re.compile(r"^\[(\w+)\] .* \((\d+\.\d)s\)$", re.M)  # "[features] ... (37.3s)"


def segments(cfg: Config, *args: str) -> None:
    """An untimed ``segments`` command of this checkout on the bench platform (preparation)."""
    env = cfg.env(SEGMENTS_TRAIN_EPOCHS="2", SEGMENTS_ENSEMBLE_SEEDS="1")
    subprocess.run([PYTHON, "-m", "app.cli", "-q", *args], env=env, check=True, cwd=CODE_ROOT)


def prepare(cfg: Config, snapshot: Path) -> None:
    """Seed, featurise, train and run the day before the last one, then snapshot (skipped when done)."""
    if snapshot.is_dir():
        return
    step = Step(4)
    ds = cfg.end_date
    step(f"seeding {cfg.users:,} users x {cfg.days} days into {cfg.home}")
    segments(cfg, "seed", "--users", str(cfg.users), "--days", str(cfg.days), "--end-date", ds)
    step.done("seeded")
    with not_arrived(cfg, ds):
        step(f"features and training as of {shift(ds, -1)} (the whole 90-day window: minutes)")
        segments(cfg, "features", "--ds", shift(ds, -1))
        segments(cfg, "train", "--ds", shift(ds, -1))
        step.done("trained")
        step(f"the daily run of {shift(ds, -1)}, before {ds} arrives")
        segments(cfg, "run", "--ds", shift(ds, -1))
        step.done("done")
    step(f"snapshot of the state {ds}'s run starts from -> {snapshot}")
    shutil.copytree(cfg.home, snapshot, ignore=lambda d, names: _not_state(cfg, Path(d), names))
    step.done("saved")


def _not_state(cfg: Config, directory: Path, names: list[str]) -> list[str]:
    """What the snapshot leaves out: the raw tables (never written by a run) and the bench's own files."""
    if directory == cfg.home:
        return [n for n in names if n == cfg.work.name]
    return ["raw"] if directory == cfg.warehouse else []


def restore(cfg: Config, snapshot: Path) -> None:
    """Put the platform back in the snapshot's state (the raw tables stay as they are)."""
    for child in cfg.home.iterdir():
        if child != cfg.work and child != cfg.warehouse:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for child in cfg.warehouse.iterdir():
        if child.name != "raw":
            shutil.rmtree(child)
    shutil.copytree(snapshot, cfg.home, dirs_exist_ok=True)


def timed_run(cfg: Config, code: Path, label: str) -> dict:
    """``segments run --ds <last day>`` of the checkout at ``code``, in its own process."""
    log = cfg.work / "logs" / f"daily-{label}.log"
    env = cfg.env(PYTHONPATH=str(code))
    command = [PYTHON, "-m", "app.cli", "-q", "run", "--ds", cfg.end_date]
    measured = run_measured(command, env, log, cwd=code)  # `python -m` puts the working directory first
    stages = [(name, float(seconds)) for name, seconds in _STAGE.findall(log.read_text())]
    return {"label": label, "wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "stages": stages}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--end-date", default="2026-06-30")
    p.add_argument("--baseline", default="HEAD", help="git ref of the code to compare with (default HEAD)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each, alternated (default 2)")
    p.add_argument("--home", type=Path, default=None)
    args = p.parse_args(argv)
    home = args.home or REPO_ROOT / "var" / "bench" / f"daily-{args.users}x{args.days}"
    cfg = Config(args.users, args.days, args.end_date, home.resolve(), threads=2, sample_users=0)
    snapshot = cfg.work / f"state-before-{cfg.end_date}"
    cfg.work.mkdir(parents=True, exist_ok=True)
    prepare(cfg, snapshot)

    baseline = Path(tempfile.mkdtemp(prefix="bench-daily-baseline-"))
    subprocess.run(["git", "-C", str(CODE_ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
                   check=True, capture_output=True)
    runs = []
    try:
        for r in range(1, args.rounds + 1):
            for label, code in ((f"baseline-{r}", baseline), (f"current-{r}", CODE_ROOT)):
                restore(cfg, snapshot)
                print(f"run {label}: segments run --ds {cfg.end_date} ...", flush=True)
                runs.append(timed_run(cfg, code, label))
                print(f"      {runs[-1]['wall_s']:.1f}s wall, {runs[-1]['cpu_s']:.1f}s CPU; stages: "
                      + ", ".join(f"{n} {s:.1f}" for n, s in runs[-1]["stages"]), flush=True)
    finally:
        subprocess.run(["git", "-C", str(CODE_ROOT), "worktree", "remove", "--force", str(baseline)], check=False)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["label"].startswith(kind))

    print(f"\nsegments run --ds {cfg.end_date}, {cfg.users:,} users x {cfg.days} days, {args.rounds} runs each "
          f"(medians)\n| code | wall s | CPU s |\n|---|---|---|")
    for kind, name in (("baseline", f"baseline {args.baseline}"), ("current", "this checkout")):
        print(f"| {name} | {median(kind, 'wall_s'):.1f} | {median(kind, 'cpu_s'):.1f} |")
    ratio = {k: median("current", k) / median("baseline", k) for k in ("wall_s", "cpu_s")}
    print(f"ratio this checkout / baseline: {ratio['wall_s']:.3f} wall, {ratio['cpu_s']:.3f} CPU")
    (cfg.work / "daily-results.json").write_text(json.dumps({"baseline": args.baseline, "runs": runs,
                                                             "ratio": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
