"""Score every user of features.user_features for ds with the champion model, inside Spark.

The contract with ml/ is the registered MLflow model: a pyfunc that takes feature-table rows and
returns segment_id, segment_name, confidence and probabilities. Rows never travel to the driver:
each Python worker loads the model once and scores its Arrow batches (mapInPandas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segments import catalog
from segments import settings as settings_mod
from segments.errors import PlatformError

_OUTPUT = catalog.table("segments.user_segments")
_PREDICTION_COLUMNS = ["user_id", "segment_id", "segment_name", "confidence", "probabilities"]


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


def _predictor(model_uri: str, tracking_uri: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A mapInPandas function that loads the model once per Python worker and scores each batch."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import mlflow

        from jobs import score as this_module  # the module-level cache outlives one task's closure

        cache = this_module._MODEL_CACHE
        if model_uri not in cache:
            mlflow.set_tracking_uri(tracking_uri)
            cache[model_uri] = mlflow.pyfunc.load_model(model_uri)
        model = cache[model_uri]
        for batch in batches:
            if batch.empty:
                continue
            out = model.predict(batch)
            out["user_id"] = batch["user_id"].to_numpy()
            yield out[_PREDICTION_COLUMNS]

    return predict


def score_users(features: DataFrame, model_uri: str, tracking_uri: str) -> DataFrame:
    """features.user_features rows -> user_id, segment_id, segment_name, confidence, probabilities."""
    schema = _OUTPUT.spark_ddl(only=_PREDICTION_COLUMNS)
    return features.mapInPandas(_predictor(model_uri, tracking_uri), schema=schema)


def score(spark: SparkSession, ds: str) -> ScoreSummary:
    """Write segments.user_segments for ds with the champion pinned by version for the whole run."""
    from segments.tracking import champion_version, configure_mlflow

    s = settings_mod.load()
    configure_mlflow()
    champion = champion_version()
    if champion is None:
        raise NoChampion(
            f"the MLflow registry has no '{s.model_name}@champion' model at {s.mlflow_tracking_uri}; "
            f"train one first: segments train --ds {ds}"
        )
    # Pin the version: if someone promotes a new champion mid-run, every worker still uses this one.
    model_uri = f"models:/{s.model_name}/{champion.version}"
    features = catalog.read_spark(spark, "features.user_features", ds=ds).drop("ds")  # not a model input
    scored = score_users(features, model_uri, s.mlflow_tracking_uri).select(
        "*",
        F.lit(s.model_name).alias("model_name"),
        F.lit(str(champion.version)).alias("model_version"),
        F.lit(ds).alias("ds"),
    )
    catalog.write_spark(scored, "segments.user_segments")
    users = catalog.read_spark(spark, "segments.user_segments", ds=ds).count()
    return ScoreSummary(ds=ds, users=users, model_name=s.model_name, model_version=str(champion.version))
