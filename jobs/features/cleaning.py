"""Cleaning: raw rows -> rows the feature transforms can trust, every step counted per raw partition.

Pure DataFrame functions (no session, no paths); the builders (``user_daily``, ``cleaning_params``) read, write and log. The policy is
declared once, as data, in ``SPECS`` below, and applied in this order to every raw table:

1. **drop** rows missing a required column (action ``drop``: user_id, timestamps, order_id).
2. **quarantine** impossible rows: the first matching rule of ``SPECS[table].quarantine`` gives the reason
   code (``unknown_event_type``, ``negative_price``, ``future_timestamp`` = the timestamp's UTC day is after
   the day of the raw partition holding it, ``late_beyond_lookback`` = it arrived more than
   ``SEGMENTS_LATE_DATA_DAYS`` days after its day, ...). They go to ``quality.quarantine`` with the row
   as JSON and are never used.
3. **impute** missing attributes: categoricals -> ``"unknown"`` (``core.tables.UNKNOWN``); numeric
   attributes (``raw.users.birth_year``) -> the median *stored* in ``features.cleaning_params``.
4. **winsorise** price, quantity and dwell_seconds at an upper quantile (99.9% price and quantity,
   99.5% dwell: dwell has the longest legitimate tail, tabs left open) fitted on the training window and
   stored; the lower tail is already bounded by 0 because negative values are quarantined. A missing value
   stays missing (it is not a value above the cap).
5. **deduplicate** by the key (event_id, order_id, user_id); rows without a key by exact equality. Last,
   so that a duplicate of a quarantined row is quarantined with it, and imputing/capping (row-wise,
   deterministic) gives duplicates identical values.
6. **true day**: ``ds`` becomes the UTC date of the row's timestamp (the Spark session is UTC, see
   ``jobs.session``); ``raw_ds`` keeps the raw partition the row arrived in.

Stored parameters (caps, medians) are fitted by ``fit_params`` on the raw window ending at the fit date
and reused unchanged by every later run until the next refit, so scoring never recomputes them.
Counts (``cleaning_counts``) are per raw partition and step; the counts of steps 3-4 are taken before
deduplication.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.tables import EVENT_TYPES, ORDER_STATUSES, UNKNOWN

DROP, IMPUTE_UNKNOWN, IMPUTE_MEDIAN = "drop", "unknown", "median"
PERCENTILE_ACCURACY = 10_000  # percentile_approx: relative rank error 1/10000
RAW_DS = "raw_ds"  # the raw partition a cleaned row arrived in (``ds`` is its true UTC day)


def _sql_set(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


@dataclass(frozen=True)
class CleaningSpec:
    """How one raw table is cleaned. Quarantine conditions are Spark SQL over the raw columns plus
    ``_raw_day`` (date of the partition) and ``_true_day`` (UTC date of the timestamp); ``{late_days}``
    is the late-data lookback."""

    key: str
    timestamp: str | None
    missing: dict[str, str]  # column -> drop | unknown | median; columns not listed are kept as they are
    quarantine: tuple[tuple[str, str], ...] = ()  # (reason code, condition); first match wins
    winsorise: dict[str, float] = field(default_factory=dict)  # column -> upper quantile
    per_partition: bool = False  # deduplicate within each raw partition (daily snapshots) or across them


_FUTURE = ("future_timestamp", "_true_day > _raw_day")
_LATE = ("late_beyond_lookback", "datediff(_raw_day, _true_day) > {late_days}")

SPECS: dict[str, CleaningSpec] = {
    "raw.events": CleaningSpec(
        key="event_id",
        timestamp="event_ts",
        missing={"user_id": DROP, "event_ts": DROP, "category": IMPUTE_UNKNOWN, "device": IMPUTE_UNKNOWN},
        quarantine=(
            ("unknown_event_type", f"event_type IS NULL OR event_type NOT IN ({_sql_set(EVENT_TYPES)})"),
            ("negative_price", "price < 0"),
            ("non_positive_quantity", "quantity < 1"),
            ("negative_dwell", "dwell_seconds < 0"),
            _FUTURE,
            _LATE,
        ),
        winsorise={"price": 0.999, "quantity": 0.999, "dwell_seconds": 0.995},
    ),
    "raw.orders": CleaningSpec(
        key="order_id",
        timestamp="order_ts",
        missing={"order_id": DROP, "user_id": DROP, "order_ts": DROP},
        quarantine=(
            ("unknown_status", f"status IS NULL OR status NOT IN ({_sql_set(ORDER_STATUSES)})"),
            ("negative_amount", "amount < 0 OR discount_amount < 0"),
            ("non_positive_item_count", "item_count < 1"),
            _FUTURE,
            _LATE,
        ),
    ),
    "raw.users": CleaningSpec(
        key="user_id",
        timestamp=None,
        missing={"user_id": DROP, "birth_year": IMPUTE_MEDIAN, "gender": IMPUTE_UNKNOWN,
                 "occupation": IMPUTE_UNKNOWN, "city_tier": IMPUTE_UNKNOWN},
        per_partition=True,  # one row per user in each daily snapshot
    ),
}


@dataclass(frozen=True)
class CleaningParams:
    """Stored caps and medians (``features.cleaning_params`` rows of one fit date)."""

    fit_ds: str
    caps: dict[tuple[str, str], float]  # (table, column) -> upper cap
    medians: dict[tuple[str, str], float]  # (table, column) -> median

    @classmethod
    def from_rows(cls, fit_ds: str, rows: list[dict]) -> "CleaningParams":
        caps = {(r["table_name"], r["column_name"]): r["value"] for r in rows if r["param"] == "upper_cap"}
        medians = {(r["table_name"], r["column_name"]): r["value"] for r in rows if r["param"] == "median"}
        return cls(fit_ds, caps, medians)


@dataclass
class Cleaned:
    """The cleaning of one raw table. ``rows`` and ``quarantine`` are lazy frames; the cleaning log comes in
    two halves so that a runner can get both from passes it makes anyway (``user_daily.build_user_daily``):

    - ``step_counts``: one row per raw partition ``ds`` with the counters of the steps before deduplication
      (``input__all``, ``drop_missing__<col>``, ``quarantine__<reason>``, ``impute_*__<col>``,
      ``winsorise__<col>``) and ``quarantined``, the partition's quarantine rows as an array of structs;
      a code-generated hash aggregation over the raw rows (``_step_counts``), no shuffle of whole rows;
    - the rows out of deduplication per raw partition: ``output_counts`` computes them on their own (a
      second deduplication when evaluated alone); a runner can instead observe them on ``rows``.
    """

    table_name: str
    key: str
    rows: DataFrame  # clean rows, ``ds`` = true UTC day, ``raw_ds`` = partition they arrived in
    quarantine: DataFrame  # quality.quarantine rows (ds = raw partition)
    step_counts: DataFrame
    output_counts: DataFrame  # ds (raw partition), output__all
    details: dict[str, str]  # counter label -> detail for the log

    @property
    def counts(self) -> DataFrame:
        """quality.cleaning_log rows (ds = raw partition), computed on their own."""
        return cleaning_log(self, self.output_counts)


def _with_days(df: DataFrame, spec: CleaningSpec) -> DataFrame:
    raw_day = F.to_date("ds")
    true_day = F.to_date(spec.timestamp) if spec.timestamp else raw_day  # UTC: the session time zone
    return df.withColumn("_raw_day", raw_day).withColumn("_true_day", true_day)


def _first_missing(spec: CleaningSpec) -> Column:
    required = [c for c, action in spec.missing.items() if action == DROP]
    return F.coalesce(*[F.when(F.col(c).isNull(), F.lit(c)) for c in required], F.lit(None).cast("string"))


def _first_reason(spec: CleaningSpec, late_days: int) -> Column:
    rules = [F.when(F.expr(cond.format(late_days=late_days)), F.lit(reason))
             for reason, cond in spec.quarantine]
    return F.coalesce(*rules, F.lit(None).cast("string"))


def _valid(df: DataFrame, spec: CleaningSpec, late_days: int) -> DataFrame:
    """Rows that survive the drop and quarantine steps (what parameters are fitted on)."""
    staged = _with_days(df, spec)
    return staged.where(_first_missing(spec).isNull() & _first_reason(spec, late_days).isNull())


def rejections(df: DataFrame, table_name: str, late_days: int) -> DataFrame:
    """The rows of ``df`` that cleaning would drop or quarantine, counted by reason: ``reason``
    (``missing <column>`` or a quarantine code) and ``rows``. The rules of ``clean``, without its fitted
    parameters: what the raw gate bounds (``jobs.raw_checks``)."""
    spec = SPECS[table_name]
    missing = _first_missing(spec)
    reason = F.coalesce(F.concat(F.lit("missing "), missing), _first_reason(spec, late_days))
    return (_with_days(df, spec).select(reason.alias("reason")).where(F.col("reason").isNotNull())
            .groupBy("reason").agg(F.count(F.lit(1)).alias("rows")))


def fit_params(tables: Mapping[str, DataFrame], late_days: int, window_start: str) -> list[dict]:
    """Fit caps and medians on the given raw windows; rows for ``features.cleaning_params``.

    One ``percentile_approx`` aggregation per table: a single row reaches the driver, never per-user data.
    """
    rows: list[dict] = []
    for table_name, df in tables.items():
        spec = SPECS[table_name]
        medians = [c for c, action in spec.missing.items() if action == IMPUTE_MEDIAN]
        if not spec.winsorise and not medians:
            continue
        aggs = [F.count(F.lit(1)).alias("_rows")]
        aggs += [F.percentile_approx(c, q, PERCENTILE_ACCURACY).alias(f"upper_cap:{c}")
                 for c, q in spec.winsorise.items()]
        aggs += [F.percentile_approx(c, 0.5, PERCENTILE_ACCURACY).alias(f"median:{c}") for c in medians]
        result = _valid(df, spec, late_days).agg(*aggs).first().asDict()
        for c, q in [*spec.winsorise.items(), *[(m, 0.5) for m in medians]]:
            param = "upper_cap" if c in spec.winsorise else "median"
            value = result[f"{param}:{c}"]
            rows.append({"table_name": table_name, "column_name": c, "param": param, "quantile": q,
                         "value": None if value is None else float(value), "fitted_rows": result["_rows"],
                         "window_start": window_start})
    return rows


def _dedupe(df: DataFrame, key: str, per_partition: bool) -> DataFrame:
    """One row per key (per raw partition for snapshots); rows without a key: one per identical row.

    One scan and one shuffle: the row itself (as JSON) stands in for a missing key. The shuffle is by
    user_id (never null here: rows without one were dropped, and duplicates share it), which is also the
    distribution the per-user aggregations downstream need, so Spark does not shuffle again for them.
    """
    row_as_key = F.concat(F.lit("\u0000row:"), F.to_json(F.struct(*[F.col(c) for c in df.columns])))
    keyed = df.withColumn("_dedupe_key", F.coalesce(F.col(key).cast("string"), row_as_key))
    subset = ["user_id", "_dedupe_key"] + (["ds"] if per_partition else [])
    return keyed.repartition("user_id").dropDuplicates(subset).drop("_dedupe_key")


def clean(df: DataFrame, table_name: str, params: CleaningParams, late_days: int) -> Cleaned:
    """Apply the declared policy of ``table_name`` to raw rows (``ds`` = raw partition)."""
    # One function on purpose (~60 lines): the policy's steps in the order they apply, each a few lines.
    spec = SPECS[table_name]
    types = dict(df.dtypes)
    raw_columns = [c for c in df.columns]
    staged = _with_days(df, spec).withColumn("_missing", _first_missing(spec))
    staged = staged.withColumn(
        "_reason", F.when(F.col("_missing").isNull(), _first_reason(spec, late_days))
    )
    usable = F.col("_missing").isNull() & F.col("_reason").isNull()
    quarantined = F.col("_missing").isNull() & F.col("_reason").isNotNull()
    quarantine_row = F.struct(
        F.col("_reason").alias("reason"),
        F.col(spec.key).cast("string").alias("row_key"),
        F.to_json(F.struct(*[F.col(c) for c in raw_columns])).alias("row_json"),
    )
    quarantine = staged.where(quarantined).select(
        "ds", F.lit(table_name).alias("table_name"), quarantine_row.alias("_q")).select("ds", "table_name", "_q.*")

    # Counters per raw partition, in one aggregation. Labels are "step__column": plain identifiers (odd
    # characters in column names break Spark's code generation); details for the log are kept aside.
    def flag(condition: Column) -> Column:
        return F.count_if(condition).cast("long")

    details: dict[str, str] = {}
    counters: list[Column] = [F.count(F.lit(1)).alias("input__all")]
    counters += [flag(F.col("_missing") == c).alias(f"drop_missing__{c}")
                 for c, action in spec.missing.items() if action == DROP]
    counters += [flag(F.col("_reason") == reason).alias(f"quarantine__{reason}")
                 for reason, _ in spec.quarantine]

    cleaned = staged.where(usable)
    for c, action in spec.missing.items():
        if action == IMPUTE_UNKNOWN:
            counters.append(flag(usable & F.col(c).isNull()).alias(f"impute_unknown__{c}"))
            details[f"impute_unknown__{c}"] = f"-> {UNKNOWN}"
            cleaned = cleaned.withColumn(c, F.coalesce(F.col(c), F.lit(UNKNOWN)))
        elif action == IMPUTE_MEDIAN:
            median = params.medians.get((table_name, c))
            counters.append(flag(usable & F.col(c).isNull()).alias(f"impute_median__{c}"))
            details[f"impute_median__{c}"] = f"-> stored median {median} (fit {params.fit_ds})"
            if median is not None:
                cleaned = cleaned.withColumn(c, F.coalesce(F.col(c), F.lit(median).cast(types[c])))
    for c, q in spec.winsorise.items():
        cap = params.caps.get((table_name, c))
        if cap is None:
            continue
        counters.append(flag(usable & (F.col(c) > cap)).alias(f"winsorise__{c}"))
        details[f"winsorise__{c}"] = f"capped at stored q{q:g} = {cap:g} (fit {params.fit_ds})"
        # Not F.least: it skips nulls, so least(NULL, cap) would turn a missing value into the cap.
        cleaned = cleaned.withColumn(c, F.when(F.col(c) > cap, F.lit(cap)).otherwise(F.col(c)).cast(types[c]))

    cleaned = cleaned.select(*raw_columns, "_true_day")
    deduped = _dedupe(cleaned, spec.key, spec.per_partition)
    rows = deduped.withColumn(RAW_DS, F.col("ds")).withColumn("ds", F.date_format("_true_day", "yyyy-MM-dd"))
    rows = rows.drop("_true_day")
    return Cleaned(
        table_name=table_name, key=spec.key, rows=rows, quarantine=quarantine,
        step_counts=_step_counts(staged, counters, quarantined, quarantine_row),
        output_counts=rows.groupBy(F.col(RAW_DS).alias("ds")).agg(F.count(F.lit(1)).alias("output__all")),
        details=details,
    )


def _step_counts(staged: DataFrame, counters: list[Column], quarantined: Column, quarantine_row: Column
                 ) -> DataFrame:
    """One row per raw partition ``ds``: the counters, and ``quarantined``, that partition's quarantined rows.

    Two levels, so that the pass over all raw rows is Spark's code-generated hash aggregate (fixed-width
    counters only, partial aggregation before any shuffle): grouped by (ds, quarantined row or null), the
    clean rows of a partition fold into one group and each distinct quarantined row into its own, with its
    number of copies in ``input__all``. The second level sums those few rows per partition and repeats
    each quarantined row as often as it came.
    """
    row = F.when(quarantined, quarantine_row)  # null for every row that is not quarantined
    per_row = staged.groupBy("ds", row.alias("_quarantined")).agg(*counters)
    names = [c for c in per_row.columns if c not in ("ds", "_quarantined")]
    copies = F.array_repeat(F.col("_quarantined"), F.col("input__all").cast("int"))
    return per_row.groupBy("ds").agg(
        *[F.sum(c).cast("long").alias(c) for c in names],
        # collect_list skips the null of the clean rows' group; flatten([]) is [] for a clean partition.
        F.flatten(F.collect_list(F.when(F.col("_quarantined").isNotNull(), copies))).alias("quarantined"),
    )


def cleaning_log(cleaned: Cleaned, output_counts: DataFrame) -> DataFrame:
    """quality.cleaning_log rows (ds = raw partition) from the step counters and the rows per raw partition
    out of deduplication (``ds``, ``output__all``); the deduplicated rows are counted as the difference."""
    wide = cleaned.step_counts.drop("quarantined")
    wide = wide.join(output_counts, "ds", "left").fillna(0, subset=["output__all"])
    removed = [c for c in wide.columns if c.split("__")[0] in ("drop_missing", "quarantine")]
    kept = F.col("input__all") - sum((F.col(c) for c in removed), F.lit(0))
    wide = wide.withColumn(f"deduplicate__{cleaned.key}", (kept - F.col("output__all")).cast("long"))
    entries = []  # one struct per counter: inline turns the wide row into log rows
    for label in wide.columns:
        if label == "ds":
            continue
        step, column = label.split("__", 1)
        reason = column if step == "quarantine" else ""
        entries.append(F.struct(
            F.lit(step).alias("step"),
            F.lit("*" if step == "quarantine" or column == "all" else column).alias("column_name"),
            F.lit(reason or cleaned.details.get(label, "")).alias("detail"),
            F.col(label).cast("long").alias("rows"),
        ))
    return wide.select("ds", F.lit(cleaned.table_name).alias("table_name"), F.inline(F.array(*entries)))


STEP_ORDER = ("input", "drop_missing", "quarantine", "impute_unknown", "impute_median", "winsorise",
              "deduplicate", "output")
