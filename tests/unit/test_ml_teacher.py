"""Teacher representations and k selection on tiny hand-made arrays (no autoencoder training here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.data import fit_preprocessor
from ml.teacher import (
    RFM_COLUMNS,
    behaviour_columns,
    feature_matrix,
    fit_pca,
    rfm_matrix,
    run_teacher,
    select_k,
    sequence_matrix,
)

NUMERIC = ["purchase_recency_days", "orders_90d", "revenue_90d", "lifetime_orders", "lifetime_revenue", "views_30d",
           "age"]
SMALL = dict(numeric=NUMERIC, categorical=["device"], channels=["seq_sessions"], days=4)


def frame(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "purchase_recency_days": rng.integers(0, 60, n).astype(float),
            "orders_90d": rng.integers(0, 9, n).astype(float),
            "revenue_90d": rng.uniform(0, 500, n),
            "lifetime_orders": rng.integers(1, 30, n).astype(float),
            "lifetime_revenue": rng.uniform(0, 2000, n),
            "views_30d": rng.integers(0, 99, n).astype(float),
            "age": rng.integers(18, 70, n).astype(float),
            "device": rng.choice(["mobile", "desktop"], n),
            "seq_sessions": [rng.integers(0, 3, 4).astype(float).tolist() for _ in range(n)],
        }
    )


def blobs(centres: np.ndarray, per: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + rng.normal(0, spread, (per, centres.shape[1])) for c in centres])
    return x, np.repeat(np.arange(len(centres)), per)


def test_rfm_matrix_is_the_standardised_rfm_columns():
    df = frame()
    pre = fit_preprocessor(df, **SMALL)
    static, _ = pre.to_arrays(df)
    x, names = rfm_matrix(pre, static)
    assert names == list(RFM_COLUMNS) and x.shape == (12, 5)
    # The preprocessor's z-scores of those columns, unchanged: mean 0, std 1 on the fitting frame.
    np.testing.assert_allclose(x, static[:, :5], atol=1e-6)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-5)


def test_rfm_matrix_names_a_missing_contract_column():
    df = frame()
    pre = fit_preprocessor(df, **(SMALL | {"numeric": ["orders_90d", "revenue_90d"]}))
    static, _ = pre.to_arrays(df)
    with pytest.raises(ValueError, match="purchase_recency_days"):
        rfm_matrix(pre, static)


def test_behaviour_columns_follow_the_contract_and_drop_demographics():
    pre = fit_preprocessor(frame(), **SMALL)
    assert behaviour_columns(pre) == ["purchase_recency_days", "orders_90d", "revenue_90d", "lifetime_orders",
                                      "lifetime_revenue", "views_30d"]


def test_feature_matrix_keeps_90_percent_of_the_variance():
    df = frame(40)
    pre = fit_preprocessor(df, **SMALL)
    static, _ = pre.to_arrays(df)
    x, names, info = feature_matrix(pre, static, seed=0)
    assert x.shape == (40, len(names)) and info["pca_components"] == len(names)
    # 7 numeric + device one-hot [unknown, desktop, mobile]; 'unknown' never occurs, so it is constant
    # and left out: 9 varying input columns.
    assert info["pca_explained_variance"] >= 0.9 and static.shape[1] == 10 and info["pca_input_dims"] == 9


def test_pca_drops_constant_columns_and_handles_an_all_constant_block():
    x = np.c_[np.arange(10.0), np.full(10, 3.0)]
    proj = fit_pca(x, 0.9, seed=0, whiten=False)
    assert list(proj.columns) == [0] and proj.n_components == 1
    empty = fit_pca(np.ones((10, 2)), 0.9, seed=0, whiten=True)
    assert empty.n_components == 0 and empty.transform(np.ones((3, 2))).shape == (3, 0)


def test_sequence_matrix_whitens_behaviour_and_weights_the_embedding():
    df = frame(50)
    pre = fit_preprocessor(df, **SMALL)
    static, _ = pre.to_arrays(df)
    embedding = np.random.default_rng(1).normal(size=(50, 8)) * np.arange(1, 9)  # unequal scales
    x, names, info = sequence_matrix(pre, static, embedding, seed=0)
    n_beh, n_emb = info["pca_components"], info["embedding_pca_components"]
    assert n_emb == 4 and x.shape == (50, n_beh + n_emb) and names[-1] == "seq_pc4"
    # Whitened blocks: unit variance per behaviour component, EMBEDDING_WEIGHT (0.6) per embedding one.
    np.testing.assert_allclose(x[:, :n_beh].std(axis=0, ddof=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(x[:, n_beh:].std(axis=0, ddof=1), 0.6, rtol=1e-6)
    assert info["pca_input_dims"] == 6  # age is left out


def test_select_k_finds_the_planted_k_on_separated_blobs():
    # 5 well-separated blobs in 2-D: silhouette peaks at k=5 within 2..8.
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]], dtype=float)
    x, _ = blobs(centres, 40, 0.5, seed=0)
    sel = select_k(x, (2, 8), seed=0)
    assert sel.chosen == 5 and not sel.fixed
    assert sel.ks == list(range(2, 9)) and len(sel.silhouettes) == len(sel.inertias) == 7
    assert all(a >= b for a, b in zip(sel.inertias, sel.inertias[1:]))  # elbow curve decreases


def test_select_k_with_a_fixed_k_keeps_it_and_still_reports_the_curve():
    x, _ = blobs(np.array([[0, 0], [9, 9], [0, 9]], dtype=float), 30, 0.5, seed=1)
    sel = select_k(x, (2, 5), seed=0, fixed=4)
    assert sel.chosen == 4 and sel.fixed and sel.ks == [2, 3, 4, 5]
    assert int(np.nanargmax(sel.silhouettes)) == 1  # the curve still says 3


def test_run_teacher_rfm_recovers_blobs_and_reports_silhouette():
    # Two groups of users far apart on R, F and M (90 days and lifetime): found with k chosen in 2..4.
    df = frame(40)
    rfm = ["purchase_recency_days", "orders_90d", "revenue_90d", "lifetime_orders", "lifetime_revenue"]
    df.loc[:19, rfm] = [2.0, 8.0, 900.0, 20.0, 3000.0]
    df.loc[20:, rfm] = [80.0, 0.0, 0.0, 1.0, 20.0]
    df["revenue_90d"] += np.arange(40) * 0.01
    pre = fit_preprocessor(df, **SMALL)
    static, seq = pre.to_arrays(df)
    result = run_teacher(pre, static, seq, k=None, seed=0, method="rfm_kmeans", k_range=(2, 4))
    assert result.k == 2 and result.method == "rfm_kmeans"
    assert set(result.labels[:20]) != set(result.labels[20:]) and len(set(result.labels[:20])) == 1
    assert result.silhouette > 0.9 and result.k_selection.chosen == 2


def test_run_teacher_rejects_an_unknown_method():
    df = frame()
    pre = fit_preprocessor(df, **SMALL)
    static, seq = pre.to_arrays(df)
    with pytest.raises(ValueError, match="unknown segmentation method 'dbscan'"):
        run_teacher(pre, static, seq, k=2, seed=0, method="dbscan")
