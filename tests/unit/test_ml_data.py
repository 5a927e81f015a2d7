"""Preprocessor and teacher guards on tiny hand-made frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.feature_catalog import CATEGORICAL_FEATURES, NUMERIC_FEATURES, SEQUENCE_CHANNELS
from core.settings import SEQUENCE_DAYS
from ml.data import fit_preprocessor
from ml.runtime.preprocessor import Preprocessor
from ml.teacher import fit_teacher, run_teacher

E1 = math.e - 1  # log1p(E1) == 1
E2 = math.e**2 - 1  # log1p(E2) == 2
SMALL = dict(
    numeric=["revenue_90d", "activity_trend", "recency_days"],
    categorical=["device"],
    channels=["seq_sessions", "seq_views"],
    days=4,
)


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "revenue_90d": [0.0, E1, E2, np.nan],
            "activity_trend": [-1.0, 1.0, np.nan, 0.0],
            "recency_days": [0.0, E1, np.nan, E2],
            "device": ["mobile", "Desktop ", None, "mobile"],
            "seq_sessions": [[0, 0, 0, E1], [E1, 0, 0, 0], [0.0] * 4, np.array([E1, E1, 0, 0])],
            "seq_views": [[0, 0, 0, E2], [E2, 0, 0, 0], [0.0] * 4, [np.nan, E2, 0, 0]],
        }
    )


def test_fit_and_transform_small_frame():
    pre = fit_preprocessor(small_frame(), **SMALL)
    static, seq = pre.to_arrays(small_frame())
    assert static.dtype == np.float32 and seq.dtype == np.float32
    # 3 numeric + device one-hot over [unknown, desktop, mobile] (names lower-cased and stripped).
    assert pre.categories["device"] == ["unknown", "desktop", "mobile"]
    assert static.shape == (4, 6) and seq.shape == (4, 4, 2)

    r = math.sqrt(2)
    # revenue_90d: NaN -> median of the raw values (E1), log1p -> [0, 1, 2, 1]; mean 1, std sqrt(.5)
    # so z = (v - 1) / 0.7071 = [-1.414, 0, 1.414, 0].
    np.testing.assert_allclose(static[:, 0], [-r, 0, r, 0], atol=1e-6)
    # activity_trend is signed (no log): NaN -> median 0 -> [-1, 1, 0, 0]; z = [-1.414, 1.414, 0, 0].
    np.testing.assert_allclose(static[:, 1], [-r, r, 0, 0], atol=1e-6)
    # recency_days: missing means "never", imputed with the max (E2), i.e. same as user d.
    assert pre.fill["recency_days"] == pytest.approx(E2)
    assert static[2, 2] == static[3, 2]
    # device one-hot: None -> unknown.
    np.testing.assert_array_equal(static[:, 3:], [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    # Sequences: log1p, then / 99th pct of non-zero days. All non-zero sessions are log1p(E1) = 1 and
    # all non-zero views log1p(E2) = 2, so both scale to exactly 1.0; NaN days become 0.
    assert pre.seq_scale == pytest.approx({"seq_sessions": 1.0, "seq_views": 2.0})
    np.testing.assert_allclose(seq[0, :, 0], [0, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(seq[3, :, 1], [0, 1, 0, 0], atol=1e-6)


def test_unseen_category_maps_to_unknown_and_json_roundtrip():
    pre = fit_preprocessor(small_frame(), **SMALL)
    restored = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    new = small_frame().assign(device=["tablet", "mobile", "", "desktop"])
    a_static, a_seq = pre.to_arrays(new)
    b_static, b_seq = restored.to_arrays(new)
    np.testing.assert_array_equal(a_static, b_static)
    np.testing.assert_array_equal(a_seq, b_seq)
    # 'tablet' was never seen and '' is empty: both -> unknown (first one-hot column).
    assert a_static[0, 3] == 1 and a_static[2, 3] == 1


def test_constant_column_gives_zeros_not_nan():
    df = small_frame().assign(activity_trend=0.5)
    static, _ = fit_preprocessor(df, **SMALL).to_arrays(df)
    assert np.isfinite(static).all() and (static[:, 1] == 0).all()


def test_missing_columns_are_named():
    pre = fit_preprocessor(small_frame(), **SMALL)
    with pytest.raises(ValueError, match="activity_trend, seq_views"):
        pre.to_arrays(small_frame().drop(columns=["activity_trend", "seq_views"]))
    with pytest.raises(ValueError, match="device"):
        fit_preprocessor(small_frame().drop(columns=["device"]), **SMALL)


def test_default_contract_requires_every_contract_column():
    # Without explicit lists the catalog's contract applies; the small frame lacks most of it.
    with pytest.raises(ValueError, match="recency_days|purchase_recency_days"):
        fit_preprocessor(small_frame())


def test_wrong_sequence_length_and_bad_version():
    bad = small_frame()
    bad.at[0, "seq_sessions"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="seq_sessions row 0: expected a sequence of 4 days"):
        fit_preprocessor(bad, **SMALL)
    data = fit_preprocessor(small_frame(), **SMALL).to_json() | {"version": 99}
    with pytest.raises(ValueError, match="format version"):
        Preprocessor.from_json(data)


def test_full_contract_shapes():
    rng = np.random.default_rng(0)
    n = 5
    df = pd.DataFrame({c: rng.gamma(2.0, 3.0, n) for c in NUMERIC_FEATURES})
    for c in CATEGORICAL_FEATURES:
        df[c] = ["x", "y", None, "x", "z"]
    for c in SEQUENCE_CHANNELS:
        df[c] = [rng.poisson(1.0, SEQUENCE_DAYS).astype(float) for _ in range(n)]
    pre = fit_preprocessor(df)
    static, seq = pre.to_arrays(df)
    assert static.shape == (n, len(NUMERIC_FEATURES) + len(CATEGORICAL_FEATURES) * 4)  # x [unknown, x, y, z]
    assert seq.shape == (n, SEQUENCE_DAYS, len(SEQUENCE_CHANNELS))
    assert pre.n_static == static.shape[1]


def test_teacher_needs_at_least_k_users():
    with pytest.raises(ValueError, match="cannot form 6 segments from 4 users"):
        fit_teacher(np.zeros((4, 3)), k=6, seed=0)


def test_teacher_separates_fading_and_ramping_at_equal_volume():
    # Same total activity and same static features; only the direction of the curve differs.
    days = 28
    ramp = np.linspace(0.1, 2, days)
    seqs, truth = [], []
    rng = np.random.default_rng(1)
    for i in range(40):
        curve = ramp if i % 2 else ramp[::-1]
        seqs.append(curve * rng.uniform(0.9, 1.1))
        truth.append(i % 2)
    df = pd.DataFrame(
        {"revenue_90d": 1.0, "activity_trend": 0.0, "recency_days": 1.0, "device": "m"}, index=range(40)
    )
    df["seq_sessions"] = seqs
    df["seq_views"] = seqs
    pre = fit_preprocessor(df, **(SMALL | {"days": days}))
    static, seq = pre.to_arrays(df)
    result = run_teacher(pre, static, seq, k=2, seed=0)
    # Perfect split (up to label permutation); labels are numbered by size, centroids one per segment.
    assert abs(np.corrcoef(result.labels, truth)[0, 1]) == pytest.approx(1.0)
    assert result.centroids.shape == (2, len(result.feature_names))
