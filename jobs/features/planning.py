"""Which true days a feature run rebuilds, which raw partitions it reads, and what each day was built from.

Time and late data (``L`` = ``SEGMENTS_LATE_DATA_DAYS``, default 2):

- Everything is UTC. A raw partition ``ds`` is the day rows *arrived*; the *true day* of a row is the UTC
  date of ``event_ts`` (orders: ``order_ts``). Cleaning rewrites ``ds`` to the true day.
- Point in time: the run for ``ds`` reads raw partitions ``<= ds`` only, so what it computes as of ds (the
  states of ds, ``user_features``, the labels) is what the daily run of ds computed, whenever it is rerun
  or backfilled, whatever arrived since.
- ``user_daily(d)`` (a fact table by true day) = the clean rows of day d that arrived in raw partitions
  ``[d, d+L]``; it is complete once partition ``d+L`` has arrived. The run for ``ds`` builds it for ds and
  for each lookback day d in ``[ds-L, ds-1]`` whose inputs changed since it was built, from the partitions
  ``[d, min(d+L, ds)]`` that exist; later runs revise it as late rows arrive, and run ``d+L`` makes it
  final. ``features.user_daily_inputs`` records per day the raw partitions (with a fingerprint of their
  files), cleaning parameters and L it was built from. A lookback day is kept when none of those
  partitions is gone or was written again, the parameters and L are the same, and no raw partition
  ``<= ds`` that arrived since holds a row of that day (its timestamp column, read while planning). So a
  normal day reads the new partition plus the lookback days that got late rows in it, and the plan shows
  those partition filters. Rows arriving more than L days late are quarantined (``late_beyond_lookback``)
  in the partition where they arrived: they are never counted, and the quarantine table says how many.
- A rerun or backfill of an old ds: a stored lookback day that holds rows of partitions after ds (it was
  revised by later runs) is *ahead* of ds. Its as-of-ds version is built for this run only
  (``DailyPlan.asof_days``) and the stored, more complete one is kept: a backfill never makes the fact
  table older. A day built from a partition that is gone is rebuilt from what exists.
- ``user_features`` for ds reads ``user_daily`` days ``<= ds`` (the as-of versions of ahead days) and the
  states of ds, i.e. only rows with ``event_ts < ds + 1 day``; rows stamped after the end of their
  partition's day are quarantined (``future_timestamp``).
- Missing ``user_daily`` days inside the 90-day window (fresh warehouse) are built in the same single job,
  and the run says so; ``rebuild_from`` rebuilds a whole range in one job (backfill).
- The states (``features.user_lifetime``, ``features.user_window``) of a date x are *final* when written
  by a run ``>= x + L`` (all their days complete), and *as of x* when written by run x.
  ``features.state_as_of`` records, per state and date, the run that wrote it; a run merges from the
  latest final state only (``is_final``).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core import settings as settings_mod
from core import tables, warehouse
from core.feature_catalog import WINDOW_DAYS
from jobs.dates import shift
from jobs.features import cleaning

INPUTS_TABLE = "features.user_daily_inputs"  # what each user_daily day was built from
STATES_TABLE = "features.state_as_of"  # which run wrote each stored state
DAILY_INPUTS = ("raw.events", "raw.orders")  # the cleaned tables user_daily aggregates


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
    # Lookback days whose stored user_daily holds rows that arrived after ds (a rerun of an old date): built
    # as of ds for this run only, never written over the more complete stored version.
    asof_days: list[str] = field(default_factory=list)


def window_dates(ds: str, days: int = WINDOW_DAYS) -> list[str]:
    """The ``days`` dates ending at ds (inclusive), oldest first."""
    return [shift(ds, -k) for k in range(days - 1, -1, -1)]


def date_range(first: str, last: str) -> list[str]:
    n = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days
    return [shift(first, k) for k in range(n + 1)]


def raw_window(day: str, late_days: int, ds: str | None = None) -> list[str]:
    """The raw partitions a true day's rows can arrive in: [day, day+L], and none after ds (point in time)."""
    window = window_dates(shift(day, late_days), late_days + 1)
    return [p for p in window if ds is None or p <= ds]


def plan_daily(ds: str, late_days: int, raw_days: set[str], have_daily: set[str],
               rebuild_from: str | None = None, up_to_date: Callable[[str], bool] | None = None,
               ahead: Callable[[str], bool] | None = None) -> DailyPlan:
    """Which true days to rebuild and which raw partitions (``<= ds``) that needs (see the module docstring).

    ``up_to_date(d)``: whether the stored user_daily of a lookback day d in [ds-L, ds-1] is still what its
    raw partitions up to ds give (``inputs_unchanged``); such a day is kept. None: every lookback day is
    rebuilt. ``ahead(d)``: whether the stored user_daily of a lookback day d in [ds-L, ds] holds rows that
    arrived after ds; such a day is built as of ds for this run only (``asof_days``).
    """
    lookback = window_dates(ds, late_days + 1)  # [ds-L, ds]: late rows may have changed them
    stored = [d for d in lookback if d in have_daily and d in raw_days]
    asof = {d for d in stored if ahead is not None and ahead(d)}
    kept = {d for d in stored if d != ds and d not in asof and up_to_date is not None and up_to_date(d)}
    wanted = set(lookback) - kept - asof
    missing = {d for d in window_dates(ds) if d not in have_daily} - wanted
    if rebuild_from is not None:
        wanted |= set(date_range(min(rebuild_from, ds), ds)) - asof
    build = sorted(d for d in wanted | missing if d in raw_days)
    asof_days = sorted(asof)
    read = sorted({p for d in build + asof_days for p in raw_window(d, late_days, ds)} & raw_days)
    return DailyPlan(build, read, sorted(d for d in missing if d in raw_days and d not in wanted),
                     kept_days=sorted(kept - wanted), asof_days=asof_days)


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
    whose recorded inputs (``INPUTS_TABLE``, same cleaning parameters and lookback) up to ds are unchanged,
    and building as of ds the days whose stored version holds rows that arrived after ds.

    Only the few raw partitions that appeared since a day was built are read here, one timestamp column,
    streamed (``warehouse.timestamp_days``).
    """
    raw = {name: set(warehouse.partitions(name)) if shop_has(name) else set() for name in DAILY_INPUTS}
    recorded_days = set(warehouse.partitions(INPUTS_TABLE))

    @functools.cache
    def fingerprint(key: Input) -> str:
        return warehouse.partition_fingerprint(*key)

    @functools.cache
    def days_in(key: Input) -> frozenset[str]:
        name, raw_ds = key
        return frozenset(warehouse.timestamp_days(name, raw_ds, cleaning.SPECS[name].timestamp))

    def current(day: str) -> dict[Input, str]:
        return {(name, p): fingerprint((name, p)) for name in DAILY_INPUTS
                for p in raw_window(day, late_days, ds) if p in raw[name]}

    @functools.cache
    def recorded(day: str) -> dict[Input, str] | None:
        if day not in recorded_days:
            return None
        rows = warehouse.read_arrow(INPUTS_TABLE, day).to_pylist()
        if any((r["params_fit_ds"], r["late_days"]) != (params_fit_ds, late_days) for r in rows):
            return None  # other cleaning parameters or lookback: rebuilt
        return {(r["raw_table"], r["raw_ds"]): r["fingerprint"] for r in rows}

    def later(day: str) -> list[Input]:
        """The partitions after ds the stored day was built from (a rerun of an old date)."""
        return sorted(key for key in recorded(day) or {} if key[1] > ds)

    def ahead(day: str) -> bool:
        return any(key[1] in raw[key[0]] and day in days_in(key) for key in later(day))

    def up_to_date(day: str) -> bool:
        if any(key[1] not in raw[key[0]] for key in later(day)):
            return False  # built from a partition that is gone: rebuilt from what exists
        mine = {key: f for key, f in (recorded(day) or {}).items() if key[1] <= ds}
        return recorded(day) is not None and inputs_unchanged(mine, current(day), lambda key: day in days_in(key))

    plan = plan_daily(ds, late_days, raw[primary_input()], set(warehouse.partitions("features.user_daily")),
                      rebuild_from, up_to_date=up_to_date, ahead=ahead)
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


def shop_has(name: str) -> bool:
    """Whether the shop has this raw table (``SEGMENTS_RAW_TABLES``); the others read as empty."""
    return name in settings_mod.load().raw_tables


def primary_input() -> str:
    """The raw table whose partitions make the days a run can build: raw.events, else raw.orders."""
    return next(name for name in DAILY_INPUTS if shop_has(name))


def read_raw(spark: SparkSession, name: str, partitions: list[str]) -> DataFrame:
    """Raw rows of exactly these partitions (a partition filter: Spark lists only those directories); no
    rows with the declared schema when the shop has no such table."""
    if not shop_has(name):
        return warehouse.empty_spark(spark, name)
    return warehouse.read_spark(spark, name).where(F.col(tables.PARTITION_COLUMN).isin(partitions))


def read_users_snapshot(spark: SparkSession, ds: str) -> DataFrame:
    """raw.users as of ds: its latest snapshot partition on or before ds (a shop may load attributes once
    or daily); no rows when the shop has none."""
    snapshots = [p for p in warehouse.partitions("raw.users") if p <= ds] if shop_has("raw.users") else []
    if not snapshots:
        return warehouse.empty_spark(spark, "raw.users")
    return warehouse.read_spark(spark, "raw.users", ds=snapshots[-1])


def is_final(state: str, date: str, late_days: int) -> bool:
    """Whether the stored ``state`` of ``date`` is final: written by a run on or after date + L, so every day
    it covers was complete (``STATES_TABLE``). A state without a record (a run killed while writing it,
    or a warehouse from before the record) is not."""
    if date not in warehouse.partitions(STATES_TABLE):
        return False
    rows = [r for r in warehouse.read_arrow(STATES_TABLE, date).to_pylist() if r["state_table"] == state]
    return bool(rows) and rows[0]["as_of"] >= shift(date, late_days)


def record_states(written: Mapping[str, list[str]], as_of: str | None) -> None:
    """Record that the run of ``as_of`` wrote these states (state table -> dates); ``as_of=None`` forgets
    them, before they are written, so that a run killed in between leaves them not final."""
    schema = tables.table(STATES_TABLE).arrow_schema()
    for date in sorted({d for dates in written.values() for d in dates}):
        rows = warehouse.read_arrow(STATES_TABLE, date).to_pylist() if date in warehouse.partitions(
            STATES_TABLE) else []
        mine = {state for state, dates in written.items() if date in dates}
        rows = [r for r in rows if r["state_table"] not in mine]
        if as_of is not None:
            rows += [{"state_table": state, "as_of": as_of} for state in sorted(mine)]
        warehouse.write_arrow(STATES_TABLE, pa.Table.from_pylist(rows, schema=schema), date)
