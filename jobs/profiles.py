"""``segments.segment_profiles`` from the day's labels: per segment its size, share, mean confidence and the
mean of the features ``core.tables.PROFILE_MEANS`` names (for BI)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from core import warehouse
from core.tables import PROFILE_MEANS


def segment_profiles(segments: DataFrame, features: DataFrame) -> DataFrame:
    """One row per (ds, segment): users, share of all labelled users, mean confidence, days since last
    active and key features (null for lifecycle segments, whose customers have no features)."""
    joined = segments.join(features.drop("ds"), "user_id", "left")
    per_segment = joined.groupBy("ds", "segment_id", "segment_name").agg(
        F.count(F.lit(1)).alias("users"),
        F.avg("confidence").alias("avg_confidence"),
        *[F.avg(src).alias(dst) for dst, src in PROFILE_MEANS.items()],
        F.max("model_version").alias("model_version"),
        F.avg("days_since_last_active").alias("avg_days_since_last_active"),
    )
    total = F.sum("users").over(Window.partitionBy("ds"))
    return per_segment.withColumn("share", F.col("users") / total)


def build_profiles(spark: SparkSession, ds: str) -> int:
    """Write segments.segment_profiles for ds; returns the number of segments."""
    segments = warehouse.read_spark(spark, "segments.user_segments", ds=ds)
    features = warehouse.read_spark(spark, "features.user_features", ds=ds)
    warehouse.write_spark(segment_profiles(segments, features), "segments.segment_profiles")
    return warehouse.read_spark(spark, "segments.segment_profiles", ds=ds).count()
