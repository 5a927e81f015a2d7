"""Lifecycle segments: the label of a customer who has not been active for too long to have features.

``features.user_features`` holds the customers active in the 90 days up to ds (``WINDOW_DAYS``); the
model labels them. Every other customer ever seen (``features.user_lifetime``) still gets a label as of
ds, from the days since they were last active: win-back is a main use of segmentation, so lapsed
customers must not vanish from the BI tables. Their ids are negative, so they never collide with the
model's segment ids (0..k-1), whichever model is champion.

Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.feature_catalog import WINDOW_DAYS

ACTIVE = "active"  # the lifecycle of a customer the model labels


@dataclass(frozen=True)
class LifecycleSegment:
    segment_id: int
    name: str
    action: str
    description: str


LAPSED = LifecycleSegment(-1, "lapsed", "win-back offer",
                          f"Last active {WINDOW_DAYS} or more days before ds (so without features), fewer "
                          "than SEGMENTS_CHURNED_DAYS.")
CHURNED = LifecycleSegment(-2, "churned", "reactivation campaign, or leave out of paid channels",
                           "Last active SEGMENTS_CHURNED_DAYS (default 180) or more days before ds.")
LIFECYCLE_SEGMENTS: tuple[LifecycleSegment, ...] = (LAPSED, CHURNED)


def thresholds(churned_days: int) -> list[tuple[int, LifecycleSegment]]:
    """(fewest days since last active, segment), longest first: a customer gets the first that applies.
    The one rule behind ``lifecycle_segment`` and the scoring job's Spark expression."""
    return [(max(churned_days, WINDOW_DAYS), CHURNED), (WINDOW_DAYS, LAPSED)]


def lifecycle_segment(days_since_last_active: int, churned_days: int) -> LifecycleSegment | None:
    """The lifecycle segment of a customer last active this many days before ds; None: active (the model
    labels them)."""
    return next((seg for days, seg in thresholds(churned_days) if days_since_last_active >= days), None)
