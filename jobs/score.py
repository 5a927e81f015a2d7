"""Score every user of features.user_features for ds with the champion model, inside Spark.

The contract with ml/ is the registered MLflow model version, which carries its own scoring code:
each Python worker loads the version's packaged runtime once (``core.model_runtime``, never the
installed ``ml`` package) and scores its Arrow batches (mapInPandas). Rows never travel to the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core import model_runtime, tables, warehouse
from core import settings as settings_mod
from core.errors import PlatformError

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


def _load_segmenter(model_dir_name: str) -> Any:
    """The champion's ``Segmenter``, from its packaged runtime, loaded once per Python worker and cached.

    Spark reuses Python workers across tasks (spark.python.worker.reuse, on by default), so the network
    is built once per worker, not once per task or batch. Workers read the model directory shipped with
    SparkContext.addFile and never import MLflow; the driver checked the input schema before the job.
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


def score_users(features: DataFrame, model_dir: Path, partitions: int | None = None) -> DataFrame:
    """features.user_features rows -> user_id, segment_id, segment_name, confidence, probabilities.

    ``partitions``: one per core by default. A ds partition is usually one or two Parquet files, which
    would give one task and leave the other core idle; more tasks than cores would only load the model
    in more workers.
    """
    spark = features.sparkSession
    spark.sparkContext.addFile(str(model_dir), recursive=True)  # workers: SparkFiles.get(model_dir.name)
    # Few, large Arrow batches: per-batch overhead (Python <-> JVM round trip, Keras call) is paid rarely.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    n = partitions or spark.sparkContext.defaultParallelism
    schema = _OUTPUT.spark_ddl(only=_PREDICTION_COLUMNS)
    return features.repartition(n).mapInPandas(_predictor(model_dir.name), schema=schema)


@dataclass(frozen=True)
class Champion:
    version: str
    uri: str
    extra_columns: tuple[str, ...]  # table columns the model ignores (informational)


def resolve_champion(ds: str) -> Champion:
    """The champion pinned by version, after checking its input schema against features.user_features.

    Cheap (registry + MLmodel file + Parquet footer): the CLI calls it before building a Spark session,
    so a missing champion or a contract change fails in seconds with the columns named.
    """
    from core.model_registry import champion_version, check_model_schema, configure_mlflow

    s = settings_mod.load()
    configure_mlflow()
    champion = champion_version()
    if champion is None:
        raise NoChampion(
            f"the MLflow registry has no '{s.model_name}@champion' model at {s.mlflow_tracking_uri}; "
            f"train one first: segments train --ds {ds}"
        )
    # Pin the version: if someone promotes a new champion mid-run, every worker still uses this one.
    uri = f"models:/{s.model_name}/{champion.version}"
    diff = check_model_schema(uri, ds, label=f"champion v{champion.version}")
    return Champion(str(champion.version), uri, diff.extra)


def score(spark: SparkSession, ds: str, champion: Champion | None = None) -> ScoreSummary:
    """Write segments.user_segments for ds with the champion pinned by version for the whole run."""
    s = settings_mod.load()
    champion = champion or resolve_champion(ds)
    model_dir = model_runtime.local_model_dir(champion.uri, f"{s.model_name}-v{champion.version}")
    features = warehouse.read_spark(spark, "features.user_features", ds=ds).drop("ds")  # not a model input
    scored = score_users(features, model_dir).select(
        "*",
        F.lit(s.model_name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(ds).alias("ds"),
    )
    warehouse.write_spark(scored, "segments.user_segments")
    users = warehouse.read_spark(spark, "segments.user_segments", ds=ds).count()
    return ScoreSummary(ds=ds, users=users, model_name=s.model_name, model_version=champion.version)
