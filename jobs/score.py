"""Label every customer as of ds: the champion model scores the users of features.user_features (active in
the 90 days up to ds) inside Spark; every other customer ever seen gets a lifecycle segment
(``core.lifecycle``: lapsed, churned) from the lifetime state.

The contract with ml/ is the registered MLflow model version, which carries its own scoring code:
each Python worker loads the version's packaged runtime once (``core.model_runtime``, never the
installed ``ml`` package) and scores its Arrow batches (mapInPandas). Rows never travel to the driver.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core import lifecycle, model_runtime, tables, warehouse
from core import settings as settings_mod
from core.errors import PlatformError
from core.settings import MODEL_CHOICES
from jobs.session import default_parallelism, is_remote

_OUTPUT = tables.table("segments.user_segments")
_PREDICTION_COLUMNS = ["user_id", "segment_id", "segment_name", "confidence", "probabilities"]


# Users per Arrow batch handed to a Python worker: large enough that Keras runs few big batches, small
# enough that a batch (28-day sequences of 7 channels as Python-side arrays) stays well under 1 GB.
ARROW_BATCH_ROWS = 50_000

# Loaded models per Python worker process (Spark reuses workers across tasks).
_MODEL_CACHE: dict[str, object] = {}


class NoChampion(PlatformError):
    """The registry has no model with alias 'champion'."""


@dataclass
class ScoreSummary:
    ds: str
    users: int
    model_name: str
    model_version: str
    inactive: dict[str, int] = field(default_factory=dict)  # lifecycle segment -> customers labelled so


def _load_segmenter(model_dir_name: str) -> Any:
    """The champion's ``Segmenter``, from its packaged runtime, loaded once per Python worker and cached.

    Spark reuses Python workers across tasks (spark.python.worker.reuse, on by default), so the network
    is built once per worker, not once per task or batch. Workers read the model directory shipped with
    ``_ship_model`` and never import MLflow; the driver checked the input schema before the job.
    """
    from pyspark import SparkFiles

    from core.model_runtime import load_segmenter
    from jobs import score as this_module  # the module-level cache outlives one task's closure

    cache = this_module._MODEL_CACHE
    if model_dir_name not in cache:
        # One Spark Python worker per core: multi-threaded BLAS in each only makes them fight (the numpy
        # LSTM ran 5-8x slower with 2 BLAS threads per worker on local[2]). Kept for the worker's life.
        from threadpoolctl import threadpool_limits

        cache["_blas_limit"] = threadpool_limits(limits=1, user_api="blas")
        cache[model_dir_name] = load_segmenter(SparkFiles.get(model_dir_name))
    return cache[model_dir_name]


def _predictor(model_dir_name: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A mapInPandas function: each Arrow batch (up to ARROW_BATCH_ROWS users) is one vectorised call."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _load_segmenter(model_dir_name)
        for batch in batches:
            if batch.empty:
                continue
            yield model.predict(batch)[_PREDICTION_COLUMNS]

    return predict


def _ship_model(spark: SparkSession, model_dir: Path) -> str:
    """Send the model directory to every executor; return the name ``SparkFiles.get`` finds it by.

    In local mode the directory itself (``addFile`` recursive). A cluster takes no local directory
    (UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY): a zip of it, which each executor unpacks (``addArchive``; a Spark
    Connect session: ``addArtifacts(archive=True)``).
    """
    remote = is_remote(spark)
    if not remote and spark.sparkContext.master.startswith("local"):
        spark.sparkContext.addFile(str(model_dir), recursive=True)
        return model_dir.name
    archive = model_dir.with_name(f"{model_dir.name}.zip")
    if not archive.exists():  # the directory is per version and never changes: zipped once
        partial = shutil.make_archive(str(archive.with_name(f".{archive.stem}-{os.getpid()}")), "zip", model_dir)
        os.replace(partial, archive)
    if remote:  # a Spark Connect session's own files, dropped with the session
        spark.addArtifacts(str(archive), archive=True)
    else:
        spark.sparkContext.addArchive(str(archive))
    return archive.name


def score_users(features: DataFrame, model_dir: Path, partitions: int | None = None) -> DataFrame:
    """features.user_features rows -> user_id, segment_id, segment_name, confidence, probabilities.

    ``partitions``: one per core by default. A ds partition is usually one or two Parquet files, which
    would give one task and leave the other core idle; more tasks than cores would only load the model
    in more workers.
    """
    spark = features.sparkSession
    shipped = _ship_model(spark, model_dir)  # workers: SparkFiles.get(shipped)
    # Few, large Arrow batches: per-batch overhead (Python <-> JVM round trip, Keras call) is paid rarely.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    n = partitions or default_parallelism(spark)
    schema = _OUTPUT.spark_ddl(only=_PREDICTION_COLUMNS)
    return features.repartition(n).mapInPandas(_predictor(shipped), schema=schema)


@dataclass(frozen=True)
class Champion:
    """The model version a scoring run uses, pinned by version."""

    version: str
    uri: str
    extra_columns: tuple[str, ...]  # table columns the model ignores (informational)
    chosen: str = "champion"  # why this version: "champion", or "recorded" (the date's first labelling)


DATE_MODELS = "segments.date_models"


def recorded_version(ds: str) -> str | None:
    """The model version that first labelled ds (``segments.date_models``); for dates labelled before the
    record existed, the version of the stored labels; None for a date never labelled."""
    name = settings_mod.load().model_name
    if ds in warehouse.partitions(DATE_MODELS):
        rows = [r for r in warehouse.read_arrow(DATE_MODELS, ds).to_pylist() if r["model_name"] == name]
        if rows:
            return rows[0]["first_version"]
    if ds in warehouse.partitions("segments.user_segments"):
        versions = warehouse.read_arrow("segments.user_segments", ds, ["model_name", "model_version"]).to_pylist()
        found = {r["model_version"] for r in versions if r["model_name"] == name and r["model_version"]}
        if len(found) == 1:
            return found.pop()
    return None


def record_version(ds: str, version: str) -> None:
    """Record that ``version`` labelled ds; the first version that did is kept."""
    import pyarrow as pa

    name = settings_mod.load().model_name
    rows = warehouse.read_arrow(DATE_MODELS, ds).to_pylist() if ds in warehouse.partitions(DATE_MODELS) else []
    first = next((r["first_version"] for r in rows if r["model_name"] == name), version)
    rows = [r for r in rows if r["model_name"] != name] + [
        {"model_name": name, "first_version": first, "version": version}]
    warehouse.write_arrow(DATE_MODELS, pa.Table.from_pylist(rows, schema=tables.table(DATE_MODELS).arrow_schema()),
                          ds)


def resolve_model(ds: str, choice: str = "recorded") -> Champion:
    """The version that labels ds, pinned, after checking its input schema against features.user_features.

    ``recorded``: the version that first labelled ds (a rerun or backfill reproduces the date's labels),
    the champion for a date never labelled; ``champion``: the current champion. Cheap (registry + MLmodel
    file + Parquet footer): the CLI calls it before building a Spark session, so a missing model or a
    contract change fails in seconds with the columns named.
    """
    from core.model_registry import champion_version, check_model_schema, configure_mlflow, is_not_found

    if choice not in MODEL_CHOICES:
        raise PlatformError(f"unknown model choice {choice!r}", hint=f"choose from {', '.join(MODEL_CHOICES)}")
    s = settings_mod.load()
    configure_mlflow()
    version = recorded_version(ds) if choice == "recorded" else None
    chosen = "recorded" if version else "champion"
    if version is None:
        champion = champion_version()
        if champion is None:
            raise NoChampion(
                f"the MLflow registry has no '{s.model_name}@champion' model at {s.mlflow_tracking_uri}; "
                f"train one first: segments train --ds {ds}"
            )
        version = str(champion.version)
    # Pin the version: if someone promotes a new champion mid-run, every worker still uses this one.
    uri = f"models:/{s.model_name}/{version}"
    try:
        diff = check_model_schema(uri, ds, label=f"{chosen} v{version}")
    except Exception as exc:
        if chosen != "recorded" or not is_not_found(exc):
            raise
        raise PlatformError(f"{s.model_name} v{version}, which first labelled ds={ds}, is no longer in the "
                            "registry", hint="relabel the date with the champion: --model champion") from None
    return Champion(version, uri, diff.extra, chosen)


def resolve_champion(ds: str) -> Champion:
    """The current champion, pinned (``resolve_model(ds, "champion")``)."""
    return resolve_model(ds, "champion")


def with_lifecycle(scored: DataFrame, lifetime: DataFrame, ds: str, churned_days: int) -> DataFrame:
    """Every customer of the lifetime state of ds with a label: the model's labels of the active ones
    (``scored``: user_id + the prediction columns), a lifecycle segment (``core.lifecycle``) for the others;
    each with ``lifecycle`` and ``days_since_last_active``."""
    days = F.datediff(F.to_date(F.lit(ds)), F.to_date("last_seen_ds")).cast("int")
    seen = lifetime.select("user_id", days.alias("days_since_last_active"))
    active = scored.join(seen, "user_id", "left").withColumn("lifecycle", F.lit(lifecycle.ACTIVE))
    rules = lifecycle.thresholds(churned_days)

    def pick(attribute: str) -> Column:  # the first rule that applies; the last one catches the rest
        column = F.lit(getattr(rules[-1][1], attribute))
        for fewest, segment in reversed(rules[:-1]):
            column = F.when(F.col("days_since_last_active") >= fewest, F.lit(getattr(segment, attribute))
                            ).otherwise(column)
        return column

    inactive = seen.join(scored.select("user_id"), "user_id", "left_anti").select(
        "user_id",
        pick("segment_id").cast("int").alias("segment_id"),
        pick("name").alias("segment_name"),
        F.lit(1.0).alias("confidence"),  # a rule on the data, not a guess
        F.lit(None).cast("array<double>").alias("probabilities"),
        "days_since_last_active",
        pick("name").alias("lifecycle"),
    )
    return active.unionByName(inactive)


def score(spark: SparkSession, ds: str, champion: Champion | None = None) -> ScoreSummary:
    """Write segments.user_segments for ds with one model version pinned for the whole run (default: the
    version that first labelled ds, else the champion): the active customers scored by the model, every
    other customer ever seen with a lifecycle segment. Records the version in ``segments.date_models``."""
    s = settings_mod.load()
    champion = champion or resolve_model(ds)
    model_dir = model_runtime.local_model_dir(champion.uri, f"{s.model_name}-v{champion.version}")
    features = warehouse.read_spark(spark, "features.user_features", ds=ds).drop("ds")  # not a model input
    lifetime = warehouse.read_spark(spark, "features.user_lifetime", ds=ds)
    labels = with_lifecycle(score_users(features, model_dir), lifetime, ds, s.churned_days).select(
        "*",
        F.lit(s.model_name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(ds).alias("ds"),
    )
    warehouse.write_spark(labels, "segments.user_segments")
    record_version(ds, champion.version)
    counts = dict(warehouse.read_spark(spark, "segments.user_segments", ds=ds).groupBy("lifecycle").count()
                  .collect())
    return ScoreSummary(ds=ds, users=counts.pop(lifecycle.ACTIVE, 0), model_name=s.model_name,
                        model_version=champion.version, inactive=counts)
