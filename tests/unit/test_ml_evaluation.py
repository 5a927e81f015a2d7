"""Hold-out split, label matching and class weights (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.evaluation import apply_mapping, classification_metrics, hungarian_mapping, is_holdout
from ml.model import balanced_sample_weights


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


def test_balanced_weights():
    # 3 of class 0, 1 of class 1, class 2 absent: n / (2 present classes * count).
    np.testing.assert_allclose(balanced_sample_weights(np.array([0, 0, 0, 1]), 3), [4 / 6] * 3 + [2.0])
