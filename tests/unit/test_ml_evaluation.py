"""ml/evaluation.py: hold-out split, metrics, label matching, cold start, stability (tiny hand-made inputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.evaluation import (
    apply_mapping,
    classification_metrics,
    cold_start_mask,
    day_to_day_stability,
    hungarian_mapping,
    is_holdout,
    retrain_stability,
)


def test_holdout_is_deterministic_and_about_one_in_five():
    ids = [f"u{i}" for i in range(5000)]
    first, again = is_holdout(ids), is_holdout(list(reversed(ids)))[::-1]
    np.testing.assert_array_equal(first, again)  # depends on the id only, not on row order
    assert 0.17 < first.mean() < 0.23


def test_hungarian_recovers_a_permutation():
    target = np.array([0, 0, 1, 1, 2, 2, 2])
    source = np.array([5, 5, 3, 3, 9, 9, 3])  # same groups, other ids, one user moved
    mapping = hungarian_mapping(source, target)
    assert mapping == {5: 0, 3: 1, 9: 2}
    mapped = apply_mapping(source, mapping)
    assert classification_metrics(target, mapped, 3)["accuracy"] == pytest.approx(6 / 7)


def test_hungarian_unmatched_source_ids_become_minus_one():
    # 3 source clusters onto 2 target ids: the weakest source cluster stays unmatched.
    mapping = hungarian_mapping(np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1]))
    assert mapping == {0: 0, 1: 1, 2: -1}


def test_macro_metrics_count_absent_segments_as_zero():
    # Segment 2 never occurs nor is predicted: macro over k=3 divides by 3, not 2.
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), k=3)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == pytest.approx(2 / 3)


def test_stability_is_the_share_of_shared_users_keeping_their_segment():
    # u1 and u2 are on both days; u1 keeps segment 0, u2 moves 1 -> 2; u0 / u3 are on one day only.
    share, users = day_to_day_stability(
        pd.Series(["u0", "u1", "u2"]), np.array([5, 0, 1]), pd.Series(["u1", "u2", "u3"]), np.array([0, 2, 1])
    )
    assert (share, users) == (0.5, 2)
    assert day_to_day_stability(pd.Series(["a"]), np.array([0]), pd.Series(["b"]), np.array([0])) == (None, 0)


def test_user_rows_keep_one_row_per_user_and_training_sorts_them(monkeypatch):
    import ml.evaluation
    from ml.train import load_features

    raw = pd.DataFrame({"user_id": ["b", None, "a", "b"], "x": [1, 2, 3, 4]})
    monkeypatch.setattr(ml.evaluation, "read_pandas", lambda name, ds: raw)
    # No user_id: dropped; a duplicate user: the first row wins; read order kept.
    assert ml.evaluation.user_rows("2026-01-01").to_numpy().tolist() == [["b", 1], ["a", 3]]
    assert load_features("2026-01-01").to_numpy().tolist() == [["a", 3], ["b", 1]]


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
