"""Feature stage runner: raw partitions -> cleaning -> features.user_daily -> user_lifetime, user_window ->
user_features.

Thin: plans which partitions to read and rebuild, calls the pure transforms (``jobs.cleaning``,
``jobs.features``, ``jobs.lifetime``) and reads/writes through the catalog.

Time and late data (``L`` = ``SEGMENTS_LATE_DATA_DAYS``, default 2):

- Everything is UTC. A raw partition ``ds`` is the day rows *arrived*; the *true day* of a row is the UTC
  date of ``event_ts`` (orders: ``order_ts``). Cleaning rewrites ``ds`` to the true day.
- ``user_daily(d)`` = the clean rows whose true day is d that arrived in raw partitions ``[d, d+L]``. It is
  a function of the raw data alone, so rebuilding a day (rerun, backfill, any order) is idempotent.
- The run for ``ds`` rebuilds ``user_daily`` for ds and for each lookback day d in ``[ds-L, ds-1]`` whose
  inputs changed since it was built, each from the raw partitions ``[d, d+L]`` that exist (on a normal day
  ``ds+1..`` do not exist yet). ``features.user_daily_inputs`` records per day the raw partitions (with a
  fingerprint of their files), cleaning parameters and L it was built from. A lookback day is kept when
  none of those partitions is gone or was written again, the parameters and L are the same, and no raw
  partition that arrived since holds a row of that day (its timestamp column, read while planning). So a
  normal day reads the new partition plus the lookback days that got late rows in it, and the plan shows
  those partition filters. A day is revised by the L runs after it and is final after run ``d+L``. Rows
  arriving more than L days late are quarantined (``late_beyond_lookback``) in the partition where they
  arrived: they are never counted, and the quarantine table says how many there were. A rerun or backfill
  of a date reads the later partitions that exist by then, so late rows (within L) are counted on their
  true day.
- Point in time: ``user_features`` for ds reads ``user_daily`` days ``<= ds`` and the states of ds,
  i.e. only rows with ``event_ts < ds + 1 day``; rows stamped after the end of their partition's day are
  quarantined (``future_timestamp``).
- Missing ``user_daily`` days inside the 90-day window (fresh warehouse) are built in the same single job,
  and the run says so; ``rebuild_from`` rebuilds a whole range in one job (backfill).

Lifetime state: run ds rewrites ``user_lifetime`` for ``[ds-L, ds]`` (the days whose ``user_daily`` may
have changed) = the latest stored state ``p < ds-L`` merged with ``user_daily`` days ``(p, ds]``. In
date order, ``p = ds-L-1`` was last rewritten by run ``ds-1``, when all its days were final, so the
incremental state equals a rebuild from scratch. Without a stored state it starts from scratch (all
``user_daily <= ds``) and also stores ``ds-L-1``, so that the next run is incremental. The state merged
from always predates the first ``user_daily`` day the run rebuilt; a backfill (``rebuild_from``) rewrites
only the states ``[ds-L, ds]``, so backfill a range by running the dates in order (as an Airflow backfill
does) when the lifetime states inside it are needed too.

Window state (``features.user_window``, ``features.user_category_window``, ``jobs.window_state``): the
90-day sums per user and per user-category that ``user_features`` reads instead of 90 ``user_daily``
partitions. Run ds writes the states of ds-L (final: the next run's base) and ds (read by the features),
from the latest stored state ``p < ds-L`` (normally ds-L-1, final): plus the ``user_daily`` days that
entered the window since, minus those that left it. Without a usable stored state (none in the last 90
days, or one built for another ``SEGMENTS_HOLIDAY_COUNTRY``) it starts from the window of ds-L-1.

Cleaning parameters (caps, medians): the latest ``features.cleaning_params`` fitted on or before ds; when
there is none, or with ``refit_params`` (the training DAG), they are fitted on the raw window
``[ds-89, ds]`` and stored under ds.

Reruns replace: every partition a run rebuilds is replaced, also by nothing: a date that has no row any
more (all its rows quarantined, no active user left) loses its old partition (``warehouse.write_spark_dates``).

Quality: ``quality.quarantine`` and ``quality.cleaning_log`` are rewritten for each raw partition whose
true day the run rebuilds (per raw partition ds, so reruns replace rather than add).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any, Callable, Mapping

import pyarrow as pa
from pyspark import InheritableThread, StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs import cleaning, window_state
from jobs.cleaning import CleaningParams
from jobs.dates import shift
from jobs.features import LOOKBACK_DAYS, RECENT_DAYS, holiday_dates, user_daily, user_features
from jobs.lifetime import lifetime_states
from core import tables
from core import warehouse
from core import settings as settings_mod

log = logging.getLogger(__name__)

PARAMS_TABLE = "features.cleaning_params"
INPUTS_TABLE = "features.user_daily_inputs"  # what each user_daily day was built from
DAILY_INPUTS = ("raw.events", "raw.orders")  # the cleaned tables user_daily aggregates


@dataclass
class FeaturesSummary:
    ds: str
    daily_dates_built: list[str]
    active_users: int
    missing_dates_filled: list[str] = field(default_factory=list)
    daily_dates_kept: list[str] = field(default_factory=list)  # lookback days whose inputs had not changed
    params_fit_ds: str = ""
    lifetime_base: str | None = None  # stored state merged from; None = rebuilt from scratch
    window_base: str | None = None  # stored 90-day window state updated from; None = rebuilt from scratch
    quarantined: int = 0  # rows quarantined from the raw partitions rebuilt by this run


Input = tuple[str, str]  # (raw table, raw partition ds)


@dataclass(frozen=True)
class DailyPlan:
    build_days: list[str]  # true days whose user_daily is rebuilt
    read_partitions: list[str]  # raw partitions read
    missing_days: list[str]  # days built because their user_daily partition was missing
    kept_days: list[str] = field(default_factory=list)  # lookback days left as built: inputs unchanged
    # Fingerprints of the raw partitions read, taken when planning; recorded per built day
    # (INPUTS_TABLE) once its user_daily is written. Empty for a plan made without looking at the files.
    fingerprints: Mapping[Input, str] = field(default_factory=dict)


def window_dates(ds: str, days: int = LOOKBACK_DAYS) -> list[str]:
    """The ``days`` dates ending at ds (inclusive), oldest first."""
    return [shift(ds, -k) for k in range(days - 1, -1, -1)]


def date_range(first: str, last: str) -> list[str]:
    n = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days
    return [shift(first, k) for k in range(n + 1)]


def raw_window(day: str, late_days: int) -> list[str]:
    """The raw partitions a true day's rows can arrive in: [day, day+L]."""
    return window_dates(shift(day, late_days), late_days + 1)


def plan_daily(ds: str, late_days: int, raw_days: set[str], have_daily: set[str],
               rebuild_from: str | None = None, up_to_date: Callable[[str], bool] | None = None) -> DailyPlan:
    """Which true days to rebuild and which raw partitions that needs (see the module docstring).

    ``up_to_date(d)``: whether the stored user_daily of a lookback day d in [ds-L, ds-1] is still what its
    raw partitions give (``inputs_unchanged``); such a day is kept. None: every lookback day is rebuilt.
    """
    lookback = window_dates(ds, late_days + 1)  # [ds-L, ds]: late rows may have changed them
    kept = {d for d in lookback[:-1] if up_to_date is not None and d in have_daily and up_to_date(d)}
    wanted = set(lookback) - kept
    missing = {d for d in window_dates(ds) if d not in have_daily} - wanted
    if rebuild_from is not None:
        wanted |= set(date_range(min(rebuild_from, ds), ds))
    build = sorted(d for d in wanted | missing if d in raw_days)
    read = sorted({p for d in build for p in raw_window(d, late_days)} & raw_days)
    return DailyPlan(build, read, sorted(d for d in missing if d in raw_days and d not in wanted),
                     kept_days=sorted(kept - wanted))


def inputs_unchanged(recorded: Mapping[Input, str] | None, current: Mapping[Input, str],
                     holds_day: Callable[[Input], bool]) -> bool:
    """Whether a user_daily day built from ``recorded`` (raw partition -> fingerprint; None: no record)
    is still what its ``current`` raw partitions give.

    It is unless a recorded partition is gone or was written again (its rows may have changed in any
    way), or a partition that appeared since holds a row of the day (``holds_day``: a late row). A new
    partition without such rows changes nothing: user_daily(d) aggregates the rows of day d only, and
    copies of an event (deduplicated by key) carry its timestamp, so its day.
    """
    if recorded is None:
        return False
    if any(current.get(key) != fingerprint for key, fingerprint in recorded.items()):
        return False
    return not any(holds_day(key) for key in current if key not in recorded)


def plan_run(ds: str, late_days: int, params_fit_ds: str, rebuild_from: str | None = None) -> DailyPlan:
    """The plan of ``build_features`` on the warehouse as it is: ``plan_daily``, keeping each lookback day
    whose recorded inputs (``INPUTS_TABLE``, same cleaning parameters and lookback) are unchanged.

    Only the few raw partitions that appeared since a day was built are read here, one timestamp column,
    streamed (``warehouse.timestamp_days``).
    """
    raw = {name: set(warehouse.partitions(name)) for name in DAILY_INPUTS}
    recorded_days = set(warehouse.partitions(INPUTS_TABLE))

    @functools.cache
    def fingerprint(key: Input) -> str:
        return warehouse.partition_fingerprint(*key)

    @functools.cache
    def days_in(key: Input) -> frozenset[str]:
        name, raw_ds = key
        return frozenset(warehouse.timestamp_days(name, raw_ds, cleaning.SPECS[name].timestamp))

    def current(day: str) -> dict[Input, str]:
        return {(name, p): fingerprint((name, p)) for name in DAILY_INPUTS for p in raw_window(day, late_days)
                if p in raw[name]}

    def recorded(day: str) -> dict[Input, str] | None:
        if day not in recorded_days:
            return None
        rows = warehouse.read_arrow(INPUTS_TABLE, day).to_pylist()
        if any((r["params_fit_ds"], r["late_days"]) != (params_fit_ds, late_days) for r in rows):
            return None  # other cleaning parameters or lookback: rebuilt
        return {(r["raw_table"], r["raw_ds"]): r["fingerprint"] for r in rows}

    def up_to_date(day: str) -> bool:
        return inputs_unchanged(recorded(day), current(day), lambda key: day in days_in(key))

    plan = plan_daily(ds, late_days, raw["raw.events"], set(warehouse.partitions("features.user_daily")),
                      rebuild_from, up_to_date=up_to_date)
    read = {(name, p): fingerprint((name, p)) for name in DAILY_INPUTS for p in plan.read_partitions
            if p in raw[name]}
    return replace(plan, fingerprints=read)


def record_inputs(plan: DailyPlan, params_fit_ds: str, late_days: int) -> None:
    """Record, per built day, the raw partitions (fingerprints from the plan) it was built from; written
    after its user_daily, so a run that fails in between leaves an older record and the day is rebuilt."""
    schema = tables.table(INPUTS_TABLE).arrow_schema()
    for day in plan.build_days:
        window = set(raw_window(day, late_days))
        rows = [{"raw_table": name, "raw_ds": raw_ds, "fingerprint": fingerprint,
                 "params_fit_ds": params_fit_ds, "late_days": late_days}
                for (name, raw_ds), fingerprint in sorted(plan.fingerprints.items()) if raw_ds in window]
        warehouse.write_arrow(INPUTS_TABLE, pa.Table.from_pylist(rows, schema=schema), day)


def read_raw(spark: SparkSession, name: str, partitions: list[str]) -> DataFrame:
    """Raw rows of exactly these partitions (a partition filter: Spark lists only those directories)."""
    return warehouse.read_spark(spark, name).where(F.col(tables.PARTITION_COLUMN).isin(partitions))


def latest_params_ds(ds: str) -> str | None:
    """The fit date of the stored cleaning parameters a run for ds uses (the latest on or before ds)."""
    fitted = [p for p in warehouse.partitions(PARAMS_TABLE) if p <= ds]
    return fitted[-1] if fitted else None


def load_params(spark: SparkSession, ds: str, late_days: int, refit: bool = False) -> CleaningParams:
    """The stored cleaning parameters for ds; fitted (and stored under ds) when none exist or on refit."""
    fit_ds = latest_params_ds(ds)
    if fit_ds is not None and not refit:
        return CleaningParams.from_rows(fit_ds, warehouse.read_arrow(PARAMS_TABLE, fit_ds).to_pylist())
    window = sorted(set(window_dates(ds)) & set(warehouse.partitions("raw.events")))
    if not window:
        raise warehouse.TableNotFound(f"raw.events has no partition in the 90 days up to ds={ds} to fit "
                                    "cleaning parameters on")
    tables = {"raw.events": read_raw(spark, "raw.events", window),
              "raw.users": warehouse.read_spark(spark, "raw.users", ds=ds)}
    rows = cleaning.fit_params(tables, late_days, window_start=window[0])
    schema = tables.table(PARAMS_TABLE).arrow_schema()
    warehouse.write_arrow(PARAMS_TABLE, pa.Table.from_pylist(rows, schema=schema), ds)
    for r in rows:
        log.info("cleaning params fit ds=%s (raw %s .. %s): %s.%s %s q=%s -> %s", ds, window[0], ds,
                 r["table_name"], r["column_name"], r["param"], r["quantile"], r["value"])
    return CleaningParams.from_rows(ds, rows)


def _collect_log(counts: DataFrame, owned: list[str]) -> list[dict]:
    """The cleaning log rows of the owned raw partitions: aggregated counters (a few dozen rows per
    partition), not per-user data."""
    return [r.asDict() for r in counts.where(F.col("ds").isin(owned)).collect()]


def _write_cleaning_log(rows: list[dict], owned: list[str]) -> int:
    """Write the cleaning log of the owned raw partitions (clearing stale quarantine partitions); return rows
    quarantined."""
    order = {step: i for i, step in enumerate(cleaning.STEP_ORDER)}
    rows.sort(key=lambda r: (r["ds"], r["table_name"], order.get(r["step"], 99)))
    log_schema = tables.table("quality.cleaning_log").arrow_schema()
    quarantined = 0
    for ds in owned:
        mine = [r for r in rows if r["ds"] == ds]
        warehouse.write_arrow("quality.cleaning_log", pa.Table.from_pylist(mine, schema=log_schema), ds)
        here = sum(r["rows"] for r in mine if r["step"] == "quarantine")
        quarantined += here
        if here == 0:  # the Spark write replaces only partitions that have rows: clear stale ones
            empty = tables.table("quality.quarantine").arrow_schema().empty_table()
            warehouse.write_arrow("quality.quarantine", empty, ds)
        for table_name in sorted({r["table_name"] for r in mine}):
            steps = [f"{r['step']} {r['detail'] if r['step'] == 'quarantine' else r['column_name']}"
                     f"={r['rows']}"
                     for r in mine if r["table_name"] == table_name and (r["rows"] or r["step"] == "output")]
            log.info("cleaning %s ds=%s: %s", table_name, ds, ", ".join(steps))
    return quarantined


def _write_dates(df: DataFrame, name: str, dates: list[str]) -> None:
    """Replace the partitions of ``dates`` with the rows of ``df``, also by nothing (module docstring)."""
    for d in warehouse.write_spark_dates(df, name, dates):
        log.info("%s ds=%s: no rows any more, old partition removed", name, d)


def run_concurrently(*actions: Callable[[], Any]) -> list[Any]:
    """Run independent Spark actions at once, each from its own driver thread; return their results in order.

    On two cores one action's driver-side planning, small stages and single-task writes leave a core idle
    that the other's tasks use. Every action is waited for before the first failure is raised, so no job
    is still writing when the run reports its error. ``InheritableThread``: the JVM side of each thread gets
    the caller's local properties (job group, description) and is released when the thread ends.
    """
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException | None] = [None] * len(actions)

    def run(i: int, action: Callable[[], Any]) -> None:
        try:
            results[i] = action()
        except BaseException as error:  # re-raised below, in the caller's thread
            errors[i] = error

    threads = [InheritableThread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def _count_per_day(column: str, days: list[str]) -> list[Column]:
    """One count per day, for ``observe`` (which takes no groupBy). Aliases d0, d1, ...: dates are not plain
    identifiers, and odd column names break code generation."""
    return [F.count_if(F.col(column) == d).alias(f"d{i}") for i, d in enumerate(days)]


def _per_day(observation: Observation, days: list[str]) -> dict[str, int]:
    values = observation.get  # blocks until the action that carried the observation has finished
    return {d: int(values[f"d{i}"]) for i, d in enumerate(days)}


def clean_inputs(spark: SparkSession, plan: DailyPlan, params: CleaningParams, late_days: int
                 ) -> dict[str, cleaning.Cleaned]:
    """The cleaned raw tables of a plan: events/orders of the read partitions, users of the built days."""
    out = {name: cleaning.clean(read_raw(spark, name, plan.read_partitions), name, params, late_days)
           for name in DAILY_INPUTS}
    out["raw.users"] = cleaning.clean(read_raw(spark, "raw.users", plan.build_days), "raw.users", params,
                                      late_days)
    return out


def daily_frame(rows: Mapping[str, DataFrame], plan: DailyPlan) -> DataFrame:
    """user_daily rows of the planned true days from the cleaned rows of DAILY_INPUTS (true day in ds)."""
    events, orders = (rows[name].where(F.col("ds").isin(plan.build_days)) for name in DAILY_INPUTS)
    return user_daily(events, orders)


def build_user_daily(spark: SparkSession, plan: DailyPlan, params: CleaningParams, late_days: int) -> int:
    """Clean the planned raw partitions, write the quality tables and rebuild user_daily for the planned days.

    Two passes over the raw rows, each a single job, and one deduplication shuffle:

    1. per table and owned raw partition, a two-level hash aggregation (``cleaning._step_counts``) gives the
       step counters and the quarantined rows (persisted: a few numbers and the quarantined rows per
       partition); the quarantine write reads it;
    2. the user_daily write; the rows out of deduplication per owned raw partition (the last counter of the
       cleaning log) are observed on the way (``observe``).

    The quarantine write, the user_daily write and the raw.users log run at once (``run_concurrently``).
    A built day left with no user_daily row loses its old partition (``warehouse.write_spark_dates``). Only
    raw.users (not part of user_daily) is deduplicated a second time, for its log.
    """
    owned = plan.build_days  # raw partitions whose quality rows this run owns (same dates as the true days)
    cleaned = clean_inputs(spark, plan, params, late_days)
    # One row per table and raw partition, so at most one cache partition per owned raw partition: Spark
    # does not coalesce the shuffle partitions of a cached plan (AQE leaves its output partitioning alone),
    # and every later read of the 64 near-empty partitions of a daily run was a stage of 64 tasks (~1-3 s
    # each on a fresh JVM, five per run). Not fewer: a row carries its partition's quarantined rows, so a
    # rebuild (90 owned partitions: no change) keeps them spread over the cache blocks.
    summaries = {name: replace(c, step_counts=c.step_counts.where(F.col("ds").isin(owned))
                               .coalesce(len(owned)).persist(StorageLevel.MEMORY_AND_DISK))
                 for name, c in cleaned.items()}
    try:
        quarantine = reduce(DataFrame.unionByName, [
            c.step_counts.select("ds", F.lit(name).alias("table_name"), F.inline("quarantined"))
            for name, c in summaries.items()])

        outputs = {name: Observation(f"deduplicated {name}") for name in DAILY_INPUTS}
        inputs = {name: cleaned[name].rows.observe(outputs[name], *_count_per_day(cleaning.RAW_DS, owned))
                  for name in DAILY_INPUTS}
        daily = daily_frame(inputs, plan)
        users = summaries["raw.users"]
        _, _, users_log = run_concurrently(
            lambda: warehouse.write_spark(quarantine, "quality.quarantine"),
            # One file per day: without the repartition every shuffle partition writes a file into every
            # day it holds (64 x 90 small files after a rebuild), and each later window scan pays for them.
            lambda: _write_dates(daily.repartition("ds"), "features.user_daily", plan.build_days),
            # raw.users is not part of user_daily: its log needs no observation of that write.
            lambda: _collect_log(cleaning.cleaning_log(users, users.output_counts), owned))
        record_inputs(plan, params.fit_ds, late_days)

        schema = "ds string, output__all long"
        logs = [cleaning.cleaning_log(summaries[name], spark.createDataFrame(
                    list(_per_day(outputs[name], owned).items()), schema))
                for name in DAILY_INPUTS]
        rows = _collect_log(reduce(DataFrame.unionByName, logs), owned) + users_log
        return _write_cleaning_log(rows, owned)
    finally:
        for c in summaries.values():
            c.step_counts.unpersist()


def build_lifetime(spark: SparkSession, ds: str, late_days: int,
                   first_rebuilt: str | None = None) -> str | None:
    """Rewrite user_lifetime for [ds-L, ds]; return the stored state merged from (None: from scratch).

    The state merged from must predate every user_daily day this run rebuilt (``first_rebuilt``).
    """
    dates = window_dates(ds, late_days + 1)
    before = min(dates[0], first_rebuilt or dates[0])
    earlier = [p for p in warehouse.partitions("features.user_lifetime") if p < before]
    base = earlier[-1] if earlier else None
    if base is None:  # from scratch: also store ds-L-1 (final already), so that the next run is incremental
        dates = window_dates(ds, late_days + 2)
    previous = warehouse.read_spark(spark, "features.user_lifetime", ds=base) if base else None
    daily = warehouse.read_spark(spark, "features.user_daily", since=shift(base, 1) if base else None,
                               until=shift(ds, 1))
    _write_dates(lifetime_states(previous, daily, dates), "features.user_lifetime", dates)
    return base


def _state_country(ds: str) -> str | None:
    """The holiday country a stored window state was built for (None: mixed or empty)."""
    countries = warehouse.read_arrow(window_state.USERS_TABLE, ds, ["holiday_country"]).column(0).unique()
    return countries[0].as_py() if len(countries) == 1 else None


def build_window_state(spark: SparkSession, ds: str, late_days: int, first_rebuilt: str | None = None
                       ) -> str | None:
    """Write the 90-day window states of ds-L and ds; return the stored state updated from (None: from
    scratch).

    As for the lifetime state, the state updated from predates every user_daily day this run rebuilt.
    Only ds-L (final after this run: the next run's base) and ds (what the features read) are written;
    the days between are written by their own runs and rewritten, final, L runs later. Updating reads
    the days entering and leaving the window since the base: a state older than the window, or built for
    another holiday country, is not used.
    """
    country = settings_mod.load().holiday_country
    dates = sorted({shift(ds, -late_days), ds})
    before = min(dates[0], first_rebuilt or dates[0])
    stored = set(warehouse.partitions(window_state.USERS_TABLE)) & set(
        warehouse.partitions(window_state.CATEGORIES_TABLE))
    earlier = sorted(p for p in stored if shift(ds, -LOOKBACK_DAYS) < p < before)
    base = earlier[-1] if earlier else None
    if base is not None and _state_country(base) != country:
        log.warning("features.user_window of %s was built for another holiday country than %s: rebuilding "
                    "the window state from scratch", base, country)
        base = None
    if base is None:  # from scratch: also store ds-L-1 (final already), the base of the next run
        dates = [shift(ds, -late_days - 1), *dates]
    start = shift(base or dates[0], 1 - LOOKBACK_DAYS)  # the oldest day the update may read
    previous = None if base is None else (warehouse.read_spark(spark, window_state.USERS_TABLE, ds=base),
                                          warehouse.read_spark(spark, window_state.CATEGORIES_TABLE, ds=base))
    daily = warehouse.read_spark(spark, "features.user_daily", since=start, until=shift(ds, 1))
    users, categories = window_state.window_states(daily, dates, holiday_dates(country, start, ds),
                                                   previous=previous, base_ds=base)
    _write_dates(users.withColumn("holiday_country", F.lit(country)), window_state.USERS_TABLE, dates)
    _write_dates(categories, window_state.CATEGORIES_TABLE, dates)
    return base


def build_features(spark: SparkSession, ds: str, refit_params: bool = False,
                   rebuild_from: str | None = None) -> FeaturesSummary:
    """Clean, rebuild user_daily [ds-L, ds] (+ missing window days), lifetime [ds-L, ds], user_features ds."""
    late_days = settings_mod.load().late_data_days
    raw_days = set(warehouse.partitions("raw.events"))
    if ds not in raw_days:
        raise warehouse.TableNotFound(f"raw.events has no partition ds={ds}")
    params = load_params(spark, ds, late_days, refit=refit_params)
    plan = plan_run(ds, late_days, params.fit_ds, rebuild_from)
    if plan.missing_days:
        log.warning("features.user_daily: %d dates of the 90-day window were missing (%s .. %s); "
                    "building them in this job", len(plan.missing_days), plan.missing_days[0],
                    plan.missing_days[-1])
    log.info("features.user_daily: rebuilding %d true days %s .. %s from raw partitions %s .. %s (late-data "
             "lookback %d days)", len(plan.build_days), plan.build_days[0], plan.build_days[-1],
             plan.read_partitions[0], plan.read_partitions[-1], late_days)
    if plan.kept_days:
        log.info("features.user_daily: kept %s as built: no raw partition they were built from changed, and "
                 "none that arrived since holds rows of them", ", ".join(plan.kept_days))
    quarantined = build_user_daily(spark, plan, params, late_days)
    base, window_base = run_concurrently(
        lambda: build_lifetime(spark, ds, late_days, first_rebuilt=plan.build_days[0]),
        lambda: build_window_state(spark, ds, late_days, first_rebuilt=plan.build_days[0]))
    log.info("features.user_lifetime up to %s: %s", ds,
             f"merged from the state of {base}" if base else "rebuilt from scratch")
    log.info("features.user_window up to %s: %s", ds,
             f"updated from the state of {window_base}" if window_base else "rebuilt from scratch")

    daily = warehouse.read_spark(spark, "features.user_daily", since=window_dates(ds, RECENT_DAYS)[0],
                               until=shift(ds, 1))
    users = cleaning.clean(warehouse.read_spark(spark, "raw.users", ds=ds), "raw.users", params, late_days).rows
    lifetime = warehouse.read_spark(spark, "features.user_lifetime", ds=ds)
    window = (warehouse.read_spark(spark, window_state.USERS_TABLE, ds=ds),
              warehouse.read_spark(spark, window_state.CATEGORIES_TABLE, ds=ds))
    features = user_features(daily, users.drop(cleaning.RAW_DS), lifetime, ds, window=window)
    _write_dates(features, "features.user_features", [ds])
    active = warehouse.read_spark(spark, "features.user_features", ds=ds).count()
    return FeaturesSummary(ds=ds, daily_dates_built=plan.build_days, active_users=active,
                           missing_dates_filled=plan.missing_days, daily_dates_kept=plan.kept_days,
                           params_fit_ds=params.fit_ds,
                           lifetime_base=base, window_base=window_base, quarantined=quarantined)
