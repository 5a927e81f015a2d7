"""Time the feature stage's four heaviest transforms on their own, in one Spark session, twice each.

``python -m bench.transform_timings --home var/bench/200000x90 --ds 2026-06-30`` (a warehouse made by
``make bench-features``; ``user_daily`` and the lifetime and window states must exist for ds and the
day before). For each transform the
first run is the first time the session runs its code (the JVM compiles it as it goes, as in a daily
run; the transforms timed before it have warmed up the shared parts), the second is warm. Results are written to Spark's ``noop`` sink, so the figures cover the computation, not the write.

- ``step_counts``: the cleaning counters and quarantined rows of raw.events over every raw partition
  (``jobs.features.cleaning.clean(...).step_counts``), collected;
- ``user_daily``: cleaning, deduplication and the ``user_daily`` aggregation of the raw partitions of the
  last 3 days (``jobs.features.user_daily.clean_inputs`` + ``daily_frame``);
- ``window_state``: the 90-day window state of ds updated from that of the day before
  (``jobs.features.window_state.window_states``, both tables);
- ``user_features``: the features of ds from the stored window state and the last 30 days of ``user_daily``
  (``jobs.features.user_features.user_features``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable


def _timed(label: str, action: Callable[[], None], runs: int) -> None:
    for i in range(runs):
        started = time.monotonic()
        action()
        print(f"{label:<14} run {i + 1} ({'cold' if i == 0 else 'warm'}): {time.monotonic() - started:6.1f} s",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transform-timings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="platform root of a bench warehouse")
    parser.add_argument("--ds", default="2026-06-30")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["SEGMENTS_HOME"] = str(Path(args.home).resolve())
    os.environ.pop("SEGMENTS_WAREHOUSE", None)

    from core import settings, warehouse
    from core.feature_catalog import RECENT_DAYS, WINDOW_DAYS
    from jobs.dates import shift
    from jobs.features import cleaning, cleaning_params, planning, user_daily, window_state
    from jobs.features.calendar import holiday_dates
    from jobs.features.user_features import user_features
    from jobs.session import build_spark
    spark = build_spark("transform-timings")
    late_days = settings.load().late_data_days
    params = cleaning_params.load_params(spark, args.ds, late_days)
    raw_days = set(warehouse.partitions("raw.events"))

    def step_counts() -> None:
        raw = planning.read_raw(spark, "raw.events", sorted(raw_days))
        cleaning.clean(raw, "raw.events", params, late_days).step_counts.collect()  # a few rows per partition

    def daily() -> None:
        plan = planning.plan_daily(args.ds, late_days, raw_days, set(warehouse.partitions("features.user_daily")))
        rows = user_daily.clean_inputs(spark, plan, params, late_days)
        user_daily.daily_frame({n: rows[n].rows for n in planning.DAILY_INPUTS}, plan).write.format("noop").mode(
            "overwrite").save()

    state_tables = (window_state.USERS_TABLE, window_state.CATEGORIES_TABLE)

    def window() -> None:
        base = shift(args.ds, -1)
        previous = tuple(warehouse.read_spark(spark, name, ds=base) for name in state_tables)
        start = shift(base, 1 - WINDOW_DAYS)
        daily = warehouse.read_spark(spark, "features.user_daily", since=start, until=shift(args.ds, 1))
        holidays = holiday_dates(settings.load().holiday_country, start, args.ds)
        for state in window_state.window_states(daily, [args.ds], holidays, previous=previous, base_ds=base):
            state.write.format("noop").mode("overwrite").save()

    def features() -> None:
        since = planning.window_dates(args.ds, RECENT_DAYS)[0]
        recent = warehouse.read_spark(spark, "features.user_daily", since=since, until=shift(args.ds, 1))
        users = cleaning.clean(warehouse.read_spark(spark, "raw.users", ds=args.ds), "raw.users", params,
                               late_days).rows.drop(cleaning.RAW_DS)
        lifetime = warehouse.read_spark(spark, "features.user_lifetime", ds=args.ds)
        state = tuple(warehouse.read_spark(spark, name, ds=args.ds) for name in state_tables)
        out = user_features(recent, users, lifetime, args.ds, window=state)
        out.write.format("noop").mode("overwrite").save()

    _timed("step_counts", step_counts, args.runs)
    _timed("user_daily", daily, args.runs)
    _timed("window_state", window, args.runs)
    _timed("user_features", features, args.runs)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
