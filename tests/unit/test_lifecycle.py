"""core/lifecycle.py and jobs/score.with_lifecycle: every customer ever seen gets a label as of ds."""

from __future__ import annotations

import pytest

from core import tables
from core.lifecycle import CHURNED, LAPSED, lifecycle_segment
from tests.unit.builders import DS


def test_lifecycle_boundaries():
    # Active in the 90 days up to ds (0..89 days ago): the model labels them.
    assert lifecycle_segment(0, 180) is None and lifecycle_segment(89, 180) is None
    assert lifecycle_segment(90, 180) is LAPSED and lifecycle_segment(179, 180) is LAPSED
    assert lifecycle_segment(180, 180) is CHURNED and lifecycle_segment(1000, 180) is CHURNED
    # A churn threshold inside the feature window cannot take customers from the model: it starts at 90.
    assert lifecycle_segment(60, 30) is None and lifecycle_segment(90, 30) is CHURNED


@pytest.mark.spark
def test_every_customer_of_the_lifetime_state_gets_a_label(spark):
    from jobs.score import with_lifecycle

    scored = spark.createDataFrame([("u1", 3, "loyal", 0.8, [0.8, 0.2])],
                                   tables.table("segments.user_segments").spark_ddl(
                                       only=["user_id", "segment_id", "segment_name", "confidence",
                                             "probabilities"]))
    lifetime = spark.createDataFrame(
        [("u1", "2026-03-25"), ("u2", "2025-12-28"), ("u3", "2025-09-10"), ("u4", "2025-09-29")],
        "user_id string, last_seen_ds string")
    rows = {r.user_id: r for r in with_lifecycle(scored, lifetime, DS, churned_days=180).collect()}
    # DS = 2026-03-28: u1 active 3 days ago keeps the model's label; u2 last seen 90 days ago (just out of
    # the feature window) is lapsed; u3, 199 days ago, churned; u4, exactly 180 days ago, churned too.
    assert (rows["u1"].segment_id, rows["u1"].lifecycle, rows["u1"].days_since_last_active) == (3, "active", 3)
    assert (rows["u2"].segment_name, rows["u2"].segment_id, rows["u2"].days_since_last_active) == ("lapsed", -1, 90)
    assert (rows["u3"].segment_name, rows["u3"].lifecycle, rows["u3"].days_since_last_active) == \
        ("churned", "churned", 199)
    assert rows["u4"].segment_id == -2 and rows["u4"].confidence == 1.0 and rows["u4"].probabilities is None
