"""jobs/profiles.py: segment profiles (size, share, feature means) on tiny hand-made frames."""

from __future__ import annotations

import pytest

from core import tables, warehouse
from jobs.features import user_features
from jobs.profiles import segment_profiles
from tests.unit.builders import DS, daily_df, users_df


@pytest.mark.spark
def test_segment_profiles_sizes_shares_and_means(spark):
    seg_ddl = tables.table("segments.user_segments").spark_ddl()
    segments = spark.createDataFrame([
        ("u1", 0, "loyal", 0.9, [0.9, 0.1], "m", "1", "active", 0, DS),
        ("u2", 0, "loyal", 0.7, [0.7, 0.3], "m", "1", "active", 0, DS),
        ("u3", 1, "occasional", 0.6, [0.4, 0.6], "m", "1", "active", 0, DS),
        ("u4", -1, "lapsed", 1.0, None, "m", "1", "lapsed", 120, DS),  # no features: inactive for 120 days
    ], seg_ddl)
    daily = daily_df(spark, [
        {"user_id": "u1", "ds": DS, "views": 1, "purchases": 1, "orders": 1, "revenue": 100.0},
        {"user_id": "u2", "ds": DS, "views": 1, "purchases": 1, "orders": 1, "revenue": 50.0},
        {"user_id": "u3", "ds": DS, "views": 1},
    ])
    feats = user_features.user_features(daily, users_df(spark, []), None, DS)
    rows = {r.segment_id: r for r in segment_profiles(segments, feats).collect()}
    # Segment 0: two of four users; mean revenue (100 + 50) / 2; mean confidence (0.9 + 0.7) / 2.
    assert rows[0].users == 2 and rows[0].share == pytest.approx(2 / 4)
    assert rows[0].avg_revenue_90d == pytest.approx(75.0)
    assert rows[0].avg_confidence == pytest.approx(0.8)
    assert rows[1].users == 1 and rows[1].avg_revenue_90d == 0.0
    # The lapsed customer counts, with its days since last active, and no feature means.
    assert rows[-1].users == 1 and rows[-1].avg_days_since_last_active == 120.0
    assert rows[-1].avg_revenue_90d is None
    assert warehouse.conform(segment_profiles(segments, feats), "segments.segment_profiles").count() == 3
