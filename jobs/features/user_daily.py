"""``features.user_daily``: one row per user and true UTC day, from the cleaned events and orders.

The transform ``user_daily`` is ONE aggregation over events and orders together (a union, no join), so
the plan has one shuffle. Exact distinct counts use ``size(collect_set(..))`` per user-day (small sets)
rather than several ``countDistinct``, which would make Spark expand every row once per distinct column;
per-category counts come from one sorted ``collect_list`` (one lambda call per distinct category: Spark
interprets lambdas). Only completed orders count as revenue; cancelled and refunded orders are counted
for the cancel/refund rates. ``build_user_daily`` cleans the planned raw partitions, writes the quality
tables (quarantine, cleaning log) and the planned days.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import reduce
from typing import Mapping

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from core import tables, warehouse
from core.feature_catalog import DAYPARTS
from core.tables import ORDER_STATUSES
from jobs.concurrent_actions import run_concurrently
from jobs.features import cleaning
from jobs.features.cleaning import CleaningParams
from jobs.features.planning import DAILY_INPUTS, DailyPlan, read_raw, record_inputs

log = logging.getLogger(__name__)

_COMPLETED, _CANCELLED, _REFUNDED = ORDER_STATUSES  # the raw contract's vocabulary, in its order
_SECONDS_PER_DAY = 86_400


def purchase_day() -> Column:
    """Whether a user_daily row is a purchase day: a completed order or a purchase event. The one rule
    behind the lifetime and window states' last purchase day and so the purchase recency features."""
    return (F.col("orders") > 0) | (F.col("purchases") > 0)


def count_if(condition: Column) -> Column:
    return F.count(F.when(condition, 1))  # count() skips the nulls of the non-matching rows


def user_daily(events: DataFrame, orders: DataFrame) -> DataFrame:
    """One row per (user_id, ds) with any event or order: the columns of ``DAILY_COLUMNS``."""
    # UTC hour from epoch seconds: independent of the session time zone.
    hour = F.floor(F.pmod(F.unix_seconds("event_ts"), F.lit(_SECONDS_PER_DAY)) / 3600)
    null = {"string": F.lit(None).cast("string"), "double": F.lit(None).cast("double")}
    event_rows = events.select(
        "user_id", "ds", "event_type", "session_id", "product_id", "category", "dwell_seconds", "device",
        hour.alias("hour"),
        null["string"].alias("status"), null["double"].alias("amount"), null["double"].alias("discount_amount"),
    )
    order_rows = orders.select(
        "user_id", "ds",
        *[null["string"].alias(c) for c in ("event_type", "session_id", "product_id", "category")],
        null["double"].alias("dwell_seconds"), null["string"].alias("device"), F.lit(None).cast("long").alias("hour"),
        "status", F.col("amount").cast("double"), F.col("discount_amount").cast("double"),
    )
    etype, status, h = F.col("event_type"), F.col("status"), F.col("hour")
    completed = status == _COMPLETED
    per_day = event_rows.unionByName(order_rows).groupBy("user_id", "ds").agg(
        F.size(F.collect_set("session_id")).cast("long").alias("sessions"),
        count_if(etype == "view").alias("views"),
        count_if(etype == "search").alias("searches"),
        count_if(etype == "add_to_cart").alias("add_to_carts"),
        count_if(etype == "remove_from_cart").alias("remove_from_carts"),
        count_if(etype == "purchase").alias("purchases"),
        F.size(F.collect_set("product_id")).cast("long").alias("distinct_products"),
        F.coalesce(F.sum("dwell_seconds"), F.lit(0.0)).alias("dwell_seconds"),
        count_if(completed).alias("orders"),
        F.coalesce(F.sum(F.when(completed, F.col("amount"))), F.lit(0.0)).alias("revenue"),
        F.coalesce(F.sum(F.when(completed, F.col("discount_amount"))), F.lit(0.0)).alias("discount_amount"),
        F.mode("device", deterministic=True).alias("device"),  # ties: the smallest value
        F.count("event_type").alias("events"),
        *[count_if((h >= lo) & (h < hi)).alias(f"events_{name}") for name, lo, hi in DAYPARTS],
        count_if(status == _CANCELLED).alias("cancelled_orders"),
        count_if(status == _REFUNDED).alias("refunded_orders"),
        F.array_sort(F.collect_list("category")).alias("_categories"),  # collect_list skips nulls
    )
    # Events per category from the sorted list: in a sorted list each name's events are one run, so a
    # name's count is where the next name starts minus where it starts (array_position: first, 1-based).
    # One lambda call per distinct name, not one per (name, event): Spark interprets lambdas.
    names = F.array_distinct(F.col("_categories"))  # sorted, as the list is
    starts = F.transform(names, lambda c: F.array_position("_categories", c))
    end = (F.size("_categories") + 1).cast("long")
    counts = F.transform(F.col("_starts"), lambda s, i: F.coalesce(F.get(F.col("_starts"), i + 1), end) - s)
    return per_day.withColumn("_starts", starts).select(
        "*",
        F.map_from_arrays(names, counts).alias("category_events"),
        F.size(names).cast("long").alias("distinct_categories"),
    ).drop("_categories", "_starts")


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
            lambda: warehouse.write_spark_dates(daily.repartition("ds"), "features.user_daily", plan.build_days),
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


@dataclass(frozen=True)
class AsOfDaily:
    """user_daily of the plan's ``asof_days`` as of the run's ds, for this run only (a rerun of an old date
    whose stored days hold rows that arrived later): persisted; ``release`` when the run is done."""

    days: list[str]
    frame: DataFrame

    def release(self) -> None:
        self.frame.unpersist()


def build_asof_daily(spark: SparkSession, plan: DailyPlan, params: CleaningParams, late_days: int
                     ) -> AsOfDaily | None:
    """The as-of-ds user_daily of ``plan.asof_days`` from the plan's raw partitions (all ``<= ds``); None
    when there is none. Never written: the stored days are more complete."""
    if not plan.asof_days:
        return None
    sub = replace(plan, build_days=plan.asof_days)
    cleaned = clean_inputs(spark, sub, params, late_days)
    frame = daily_frame({name: cleaned[name].rows for name in DAILY_INPUTS}, sub).persist(
        StorageLevel.MEMORY_AND_DISK)
    frame.count()  # materialised once: the states and user_features read it
    return AsOfDaily(plan.asof_days, frame)


def read_daily(spark: SparkSession, since: str | None, until: str, asof: AsOfDaily | None = None) -> DataFrame:
    """user_daily days in [since, until) as this run sees them: the stored days, with the as-of versions of
    ``asof.days`` in place of the stored ones."""
    stored = warehouse.read_spark(spark, "features.user_daily", since=since, until=until)
    if asof is None:
        return stored
    mine = asof.frame.where(F.col("ds") < until)
    if since is not None:
        mine = mine.where(F.col("ds") >= since)
    return stored.where(~F.col("ds").isin(asof.days)).unionByName(warehouse.conform(mine, "features.user_daily"))
