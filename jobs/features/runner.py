"""The feature stage for one logical date: plan -> clean -> user_daily -> lifetime and window states ->
user_features (``segments features --ds D``).

Thin: plans (``planning``), loads the cleaning parameters (``cleaning_params``) and calls each table's
builder; the modules named after the tables hold their transforms. Everything is UTC; the time and
late-data rules are in ``planning``.

Reruns replace: every partition a run rebuilds is replaced, also by nothing: a date that has no row any
more (all its rows quarantined, no active user left) loses its old partition
(``warehouse.write_spark_dates``). ``quality.quarantine`` and ``quality.cleaning_log`` are rewritten for
each raw partition whose true day the run rebuilds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from core import settings as settings_mod
from core import warehouse
from core.feature_catalog import RECENT_DAYS
from jobs.concurrent_actions import run_concurrently
from jobs.dates import shift
from jobs.features import cleaning
from jobs.features.cleaning_params import load_params
from jobs.features.lifetime import STATE, build_lifetime
from jobs.features.planning import plan_run, primary_input, read_users_snapshot, record_states, window_dates
from jobs.features.user_daily import build_asof_daily, build_user_daily, read_daily
from jobs.features.user_features import user_features, without_absent
from jobs.features.window_state import CATEGORIES_TABLE, USERS_TABLE, build_window_state

log = logging.getLogger(__name__)


@dataclass
class FeaturesSummary:
    ds: str
    daily_dates_built: list[str]
    active_users: int
    missing_dates_filled: list[str] = field(default_factory=list)
    daily_dates_kept: list[str] = field(default_factory=list)  # lookback days whose inputs had not changed
    daily_dates_as_of: list[str] = field(default_factory=list)  # built as of ds for this run only (a rerun)
    params_fit_ds: str = ""
    lifetime_base: str | None = None  # stored state merged from; None = rebuilt from scratch
    window_base: str | None = None  # stored 90-day window state updated from; None = rebuilt from scratch
    quarantined: int = 0  # rows quarantined from the raw partitions rebuilt by this run


def build_features(spark: SparkSession, ds: str, refit_params: bool = False,
                   rebuild_from: str | None = None) -> FeaturesSummary:
    """Clean, rebuild user_daily [ds-L, ds] (+ missing window days) from raw partitions <= ds, the states of
    ds-L and ds, user_features ds."""
    late_days = settings_mod.load().late_data_days
    primary = primary_input()
    if ds not in set(warehouse.partitions(primary)):
        raise warehouse.TableNotFound(f"{primary} has no partition ds={ds}")
    params = load_params(spark, ds, late_days, refit=refit_params)
    plan = plan_run(ds, late_days, params.fit_ds, rebuild_from)
    if plan.missing_days:
        log.warning("features.user_daily: %d dates of the 90-day window were missing (%s .. %s); "
                    "building them in this job", len(plan.missing_days), plan.missing_days[0],
                    plan.missing_days[-1])
    if plan.build_days:
        log.info("features.user_daily: rebuilding %d true days %s .. %s from raw partitions %s .. %s "
                 "(late-data lookback %d days)", len(plan.build_days), plan.build_days[0], plan.build_days[-1],
                 plan.read_partitions[0], plan.read_partitions[-1], late_days)
    if plan.kept_days:
        log.info("features.user_daily: kept %s as built: no raw partition they were built from changed, and "
                 "none that arrived since holds rows of them", ", ".join(plan.kept_days))
    if plan.asof_days:
        log.info("features.user_daily: %s hold rows that arrived after %s; built as of %s for this run, the "
                 "stored days kept", ", ".join(plan.asof_days), ds, ds)
    quarantined = build_user_daily(spark, plan, params, late_days) if plan.build_days else 0
    asof = build_asof_daily(spark, plan, params, late_days)
    try:
        first = min(plan.build_days + plan.asof_days)
        # The state of ds is as of ds, not final: a run killed while writing it over a final one must not
        # leave it recorded as final. (ds-L and a from-scratch ds-L-1 are final whatever happens.)
        record_states({STATE: [ds], USERS_TABLE: [ds]}, None)
        (base, lifetime_dates), (window_base, window_written) = run_concurrently(
            lambda: build_lifetime(spark, ds, late_days, first_rebuilt=first, asof=asof),
            lambda: build_window_state(spark, ds, late_days, first_rebuilt=first, asof=asof))
        record_states({STATE: lifetime_dates, USERS_TABLE: window_written}, ds)
        log.info("features.user_lifetime up to %s: %s", ds,
                 f"merged from the state of {base}" if base else "rebuilt from scratch")
        log.info("features.user_window up to %s: %s", ds,
                 f"updated from the state of {window_base}" if window_base else "rebuilt from scratch")

        daily = read_daily(spark, window_dates(ds, RECENT_DAYS)[0], shift(ds, 1), asof)
        users = cleaning.clean(read_users_snapshot(spark, ds), "raw.users", params, late_days).rows
        lifetime = warehouse.read_spark(spark, STATE, ds=ds)
        window = (warehouse.read_spark(spark, USERS_TABLE, ds=ds),
                  warehouse.read_spark(spark, CATEGORIES_TABLE, ds=ds))
        features = user_features(daily, users.drop(cleaning.RAW_DS), lifetime, ds, window=window)
        features = without_absent(features, settings_mod.load().raw_tables)
        warehouse.write_spark_dates(features, "features.user_features", [ds])
    finally:
        if asof is not None:
            asof.release()
    active = warehouse.read_spark(spark, "features.user_features", ds=ds).count()
    return FeaturesSummary(ds=ds, daily_dates_built=plan.build_days, active_users=active,
                           missing_dates_filled=plan.missing_days, daily_dates_kept=plan.kept_days,
                           daily_dates_as_of=plan.asof_days,
                           params_fit_ds=params.fit_ds,
                           lifetime_base=base, window_base=window_base, quarantined=quarantined)
