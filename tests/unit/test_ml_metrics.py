"""Cold-start mask, stability metrics and subgroup macro-F1 on tiny hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.evaluation import classification_metrics, cold_start_mask, day_to_day_stability, retrain_stability


def test_cold_start_uses_the_90_day_window_when_no_lifetime_column():
    df = pd.DataFrame({"active_days_90d": [0.0, 6.0, 7.0, 30.0, np.nan]})
    # < 7 active days is cold; a missing count means nobody saw the user act: cold.
    np.testing.assert_array_equal(cold_start_mask(df), [True, True, False, False, True])


def test_cold_start_prefers_lifetime_active_days():
    # 3 active days in 90 but 40 in a lifetime: a returning user, not a new one.
    df = pd.DataFrame({"active_days_90d": [3.0, 3.0], "lifetime_active_days": [40.0, 3.0]})
    np.testing.assert_array_equal(cold_start_mask(df), [False, True])


def test_cold_start_needs_an_active_days_column():
    with pytest.raises(ValueError, match="active-days column"):
        cold_start_mask(pd.DataFrame({"views_30d": [1.0]}))


def test_day_to_day_stability_counts_only_users_seen_on_both_days():
    # a keeps 0, b moves 1 -> 2, c keeps 2; d only yesterday, e only today: 2 of 3 kept.
    out = day_to_day_stability(["a", "b", "c", "d"], np.array([0, 1, 2, 1]), ["c", "b", "a", "e"],
                               np.array([2, 2, 0, 0]))
    assert out == {"stability": pytest.approx(2 / 3), "users": 3.0}


def test_day_to_day_stability_without_overlap_is_nan():
    out = day_to_day_stability(["a"], np.array([0]), ["b"], np.array([0]))
    assert np.isnan(out["stability"]) and out["users"] == 0.0


def test_retrain_stability_ignores_label_ids():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert retrain_stability(a, np.array([5, 5, 3, 3, 9, 9])) == pytest.approx(1.0)  # same groups
    assert retrain_stability(a, np.array([0, 1, 0, 1, 0, 1])) < 0.0  # unrelated split: below chance
    with pytest.raises(ValueError, match="differ in length"):
        retrain_stability(a, a[:3])


def test_subgroup_macro_f1_averages_over_present_segments_only():
    # Cold-start users all in segments 0 and 1 of k=6; one of four mislabelled.
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0])
    # Segment 0: P=2/3, R=1, F1=0.8; segment 1: P=1, R=1/2, F1=2/3; mean 0.7333.
    assert classification_metrics(y_true, y_pred, 6, present_only=True)["macro_f1"] == pytest.approx(11 / 15)
    # Over all 6 segments the four absent ones count as 0: (0.8 + 0.667) / 6.
    assert classification_metrics(y_true, y_pred, 6)["macro_f1"] == pytest.approx(11 / 45)
    # A segment predicted but absent from the truth still counts (as a 0 F1): here segment 3.
    assert classification_metrics(np.array([0, 0]), np.array([0, 3]), 6, present_only=True)["macro_f1"] == \
        pytest.approx((2 / 3) / 2)
