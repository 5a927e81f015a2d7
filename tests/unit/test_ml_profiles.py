"""Segment profiles (ml/profiles.py): per-segment means in raw units on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.profiles import segment_profiles


def test_profiles_are_per_segment_means_of_the_present_columns():
    df = pd.DataFrame({"revenue_90d": [10.0, 30.0, 100.0], "views_30d": [1, 3, 5], "device": ["a", "b", "c"]})
    prof = segment_profiles(df, np.array([1, 1, 0]), ["views_30d", "not_there", "revenue_90d"])
    # Columns in the order asked for (absent ones dropped); rows by segment id.
    assert list(prof.columns) == ["views_30d", "revenue_90d"] and prof.index.tolist() == [0, 1]
    assert prof.loc[1].tolist() == [2.0, 20.0] and prof.loc[0].tolist() == [5.0, 100.0]


def test_missing_unparseable_and_infinite_values_are_ignored():
    df = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 5.0], "y": ["2", "oops", "4", "6", None]})
    prof = segment_profiles(df, np.array([0, 0, 0, 0, 1]), ["x", "y"])
    assert prof.loc[0].tolist() == [1.0, 4.0]  # x: only 1.0 is a finite value; y: "oops" is not a number
    assert prof.loc[1, "x"] == 5.0 and np.isnan(prof.loc[1, "y"])  # no value at all: NaN, not 0
