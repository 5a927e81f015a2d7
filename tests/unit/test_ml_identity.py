"""Segment identity: Hungarian matching of standardised centroids, relabelling, carried-over names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.identity import (
    align,
    carry_names,
    distance_matrix,
    match_centroids,
    profiles_from_json,
    profiles_to_json,
    relabel,
    standardise,
)
from ml.profiles import segment_profiles

# Three well separated champion centroids in 2 standardised features.
OLD = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])


def test_a_permuted_set_of_centroids_maps_back_to_the_champion_ids():
    # New cluster 0 sits on champion 2, cluster 1 on champion 0, cluster 2 on champion 1 (slightly moved).
    new = np.array([[0.1, 4.9], [0.2, -0.1], [5.1, 0.1]])
    m = match_centroids(new, OLD, [0, 1, 2])
    assert m.ids == {0: 2, 1: 0, 2: 1}
    assert m.matched == m.ids
    # Cluster 0 vs champion 2: diff (0.1, -0.1) -> RMS sqrt((0.01 + 0.01) / 2) = 0.1.
    assert m.distances[0] == pytest.approx(0.1)


def test_more_new_segments_take_the_free_ids():
    # k_new=4 > k_old=3: the far-away cluster 1 is unmatched and takes the only free id, 3.
    new = np.array([[5.0, 0.0], [20.0, 20.0], [0.0, 0.0], [0.0, 5.0]])
    m = match_centroids(new, OLD, [0, 1, 2])
    assert m.ids == {0: 1, 1: 3, 2: 0, 3: 2}
    assert 1 not in m.matched


def test_fewer_new_segments_keep_ids_that_fit_and_compact_the_rest():
    # k_new=2 < k_old=3: cluster 0 ~ champion 2, cluster 1 ~ champion 0. Ids must be 0..1, so champion
    # id 2 is out of range and cluster 0 moves to the free id 1; cluster 1 keeps id 0.
    new = np.array([[0.0, 5.0], [0.0, 0.1]])
    m = match_centroids(new, OLD, [0, 1, 2])
    assert m.matched == {0: 2, 1: 0}
    assert m.ids == {0: 1, 1: 0}


def test_fewer_new_segments_that_fit_keep_their_ids():
    # Champion 2 disappeared; clusters match champions 1 and 0, both ids < k_new=2: no compaction.
    new = np.array([[5.0, 0.0], [0.0, 0.0]])
    assert match_centroids(new, OLD, [0, 1, 2]).ids == {0: 1, 1: 0}


def test_no_champion_centroids_keeps_cluster_numbering():
    assert match_centroids(np.zeros((2, 2)), np.zeros((0, 2)), []).ids == {0: 0, 1: 1}


def test_mismatched_ids_are_rejected():
    with pytest.raises(ValueError, match="3 champion centroids but 2 ids"):
        match_centroids(OLD, OLD, [0, 1])


def test_standardise_and_distance_skip_constant_and_missing_features():
    # Feature 1 is constant (std 0) -> contributes 0; feature 0: (4 - 2) / 2 = 1.
    z = standardise(np.array([[4.0, 7.0]]), mean=np.array([2.0, 7.0]), std=np.array([2.0, 0.0]))
    assert z.tolist() == [[1.0, 0.0]]
    # NaN in the second feature: the RMS is over the first only -> |3 - 0| = 3.
    d = distance_matrix(np.array([[3.0, np.nan]]), np.array([[0.0, 1.0]]))
    assert d[0, 0] == pytest.approx(3.0)


def test_relabel_applies_the_mapping_and_refuses_unmapped_clusters():
    assert relabel(np.array([0, 1, 2, 0]), {0: 2, 1: 0, 2: 1}).tolist() == [2, 0, 1, 2]
    with pytest.raises(ValueError, match="no id"):
        relabel(np.array([0, 3]), {0: 0, 3: -1})


def test_carry_names_keeps_close_names_and_renames_collisions():
    champion = {"0": {"name": "at_risk", "action": "win-back campaign"},
                "1": {"name": "occasional", "action": "low-cost reminders"}}
    # New segment 0 keeps 'at_risk'; new segment 1 is not close to anything, its rule name collides with
    # the carried 'at_risk', so it takes its next best free rule name from the score table.
    rules = {"0": {"name": "bargain_hunter", "action": "targeted coupons"},
             "1": {"name": "at_risk", "action": "win-back campaign"}}
    scores = pd.DataFrame({"at_risk": [0.0, 2.0], "window_shopper": [0.0, 1.0], "occasional": [0.0, 0.5]})
    names = carry_names(rules, scores, champion, kept={0: 0})
    assert names == {"0": {"name": "at_risk", "action": "win-back campaign"},
                     "1": {"name": "window_shopper", "action": "conversion nudges"}}
    # Without a score table the collision is resolved by a suffix.
    assert carry_names(rules, None, champion, kept={0: 0})["1"]["name"] == "at_risk_1"


def _frame(values: list[float], revenue: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(values))], "sessions_30d": values,
                         "revenue_90d": revenue, "not_a_feature": 0.0})


def test_profiles_round_trip_through_json():
    df = _frame([1.0, 3.0, 10.0], [0.0, np.nan, 100.0])
    profiles = segment_profiles(df, np.array([0, 0, 1]), ["sessions_30d", "revenue_90d"])
    # Segment 0: sessions (1 + 3) / 2 = 2, revenue mean of [0, NaN] = 0 (NaN ignored).
    assert profiles.loc[0].tolist() == [2.0, 0.0]
    payload = profiles_to_json(profiles, {0: 2, 1: 1}, {"0": {"name": "a", "action": "x"}})
    back, names = profiles_from_json(payload)
    pd.testing.assert_frame_equal(back, profiles, check_names=False)
    assert names == {"0": {"name": "a", "action": "x"}}


def test_align_relabels_a_shifted_retrain_onto_the_champion_ids():
    # Champion: segment 0 = light users, segment 1 = heavy users.
    champion_profiles = pd.DataFrame({"sessions_30d": [2.0, 20.0], "revenue_90d": [10.0, 500.0]}, index=[0, 1])
    names = {"0": {"name": "occasional", "action": "r"}, "1": {"name": "high_value_loyal", "action": "p"}}
    # Today revenue is 20% higher and K-means numbered the heavy users 0.
    df = _frame([21.0, 19.0, 2.0, 2.0], [600.0, 600.0, 12.0, 12.0])
    result = align(df, np.array([0, 0, 1, 1]), np.ones(4, bool), ("7", champion_profiles, names))
    assert result.labels.tolist() == [1, 1, 0, 0]
    assert result.kept_names == {1: 1, 0: 0}
    assert result.names({"0": {"name": "x", "action": "-"}, "1": {"name": "y", "action": "-"}}) == names
    assert align(df, np.array([0, 0, 1, 1]), np.ones(4, bool), None).labels.tolist() == [0, 0, 1, 1]
