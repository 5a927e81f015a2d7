"""Fitting the feature preprocessing on the training users, and the seeded row samples of the teacher.

The fitted ``Preprocessor`` (``ml/runtime/preprocessor.py``) is a small JSON-serialisable object stored
inside the model, so scoring applies exactly the transformation the model was trained with.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from core import feature_catalog
from core.settings import SEQUENCE_DAYS
from ml.runtime.preprocessor import (
    UNKNOWN,
    Preprocessor,
    normalise_category,
    require_columns,
    sequence_tensor,
)

# Substrings of the contract's count / money / duration features: non-negative and heavy-tailed, so
# log1p before z-scoring keeps a few whales from dominating distances and gradients. Ratios, trends and
# age are left linear.
_LOG_MARKERS = (
    "recency_days",
    "active_days_",
    "sessions_",
    "views_",
    "add_to_carts_",
    "purchases_",
    "orders_",
    "revenue_",
    "avg_order_value",
    "dwell_per_view",
    "tenure_days",
    "lifetime_orders",
    "lifetime_revenue",
)
# Recency of something that never happened is missing: "longest ago" is the honest fill, not the median.
_FILL_WITH_MAX = ("recency_days",)
_MAX_VOCAB = 30  # per categorical column; rarer values fall into 'unknown'


def contract_for(raw_tables: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, sequence channels) a shop with these raw tables has: the catalogue's features
    minus the absent families (``feature_catalog.available``), in contract order."""
    have = {f.name for f in feature_catalog.available(tuple(raw_tables))}

    def keep(names: Sequence[str]) -> list[str]:
        return [n for n in names if n in have]

    return (keep(feature_catalog.NUMERIC_FEATURES), keep(feature_catalog.CATEGORICAL_FEATURES),
            keep(feature_catalog.SEQUENCE_CHANNELS))


def trained_families(pre: Preprocessor) -> list[str]:
    """The feature families a fitted preprocessor reads (recorded with the model)."""
    used = [feature_catalog.feature(n) for n in (*pre.numeric, *pre.categories, *pre.channels)]
    return feature_catalog.families(used)


def fit_preprocessor(
    df: pd.DataFrame,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    days: int | None = None,
) -> Preprocessor:
    """Learn imputation, scaling and vocabularies from ``df`` (the training users only).

    Defaults are the catalog's feature contract; tests may pass smaller lists.
    """
    numeric = list(feature_catalog.NUMERIC_FEATURES if numeric is None else numeric)
    categorical = list(feature_catalog.CATEGORICAL_FEATURES if categorical is None else categorical)
    channels = list(feature_catalog.SEQUENCE_CHANNELS if channels is None else channels)
    days = SEQUENCE_DAYS if days is None else int(days)
    require_columns(df, [*numeric, *categorical, *channels], "feature DataFrame")
    if len(df) == 0:
        raise ValueError("cannot fit a preprocessor on an empty DataFrame")

    pre = Preprocessor(
        numeric=numeric,
        log_features=[c for c in numeric if any(m in c for m in _LOG_MARKERS)],
        fill=_fill_values(df, numeric),
        mean={},
        std={},
        categories=_vocabularies(df, categorical),
        channels=channels,
        days=days,
        seq_scale=_sequence_scales(df, channels, days),
    )
    # Scaling statistics are of the filled and log1p'd values, which only the preprocessor computes.
    pre.mean, pre.std = _scaling(pre._numeric_values(df), numeric)
    return pre


def _fill_values(df: pd.DataFrame, numeric: list[str]) -> dict[str, float]:
    """Imputation value of each numeric column: its median (max for recencies), non-finite values ignored."""
    raw = df[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    raw = np.where(np.isfinite(raw), raw, np.nan)
    fill: dict[str, float] = {}
    for j, name in enumerate(numeric):
        col = raw[:, j]
        if np.isnan(col).all():
            fill[name] = 0.0  # nothing to learn from; the z-score is then 0 for everyone
        elif any(m in name for m in _FILL_WITH_MAX):
            fill[name] = float(np.nanmax(col))
        else:
            fill[name] = float(np.nanmedian(col))
    return fill


def _scaling(x: np.ndarray, numeric: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, std) of each column of ``x`` [N, len(numeric)], for z-scores."""
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for j, name in enumerate(numeric):
        mu, sd = float(x[:, j].mean()), float(x[:, j].std())
        mean[name] = mu
        std[name] = sd if sd > 1e-9 else 1.0  # a constant column becomes all zeros, not NaN
    return mean, std


def _vocabularies(df: pd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """Per categorical column: 'unknown' then its ``_MAX_VOCAB`` most frequent values, sorted."""
    categories: dict[str, list[str]] = {}
    for col in categorical:
        counts = normalise_category(df[col]).value_counts()
        seen = sorted(v for v in counts.index[:_MAX_VOCAB] if v != UNKNOWN)
        categories[col] = [UNKNOWN, *seen]
    return categories


def _sequence_scales(df: pd.DataFrame, channels: list[str], days: int) -> dict[str, float]:
    """Per sequence channel: the divisor that brings its log1p daily values to about [0, 1]."""
    seq = np.log1p(np.clip(sequence_tensor(df, channels, days), 0.0, None))
    scales: dict[str, float] = {}
    for c, name in enumerate(channels):
        # 99th percentile of the non-zero days: robust to outliers and to mostly-idle channels.
        active = seq[:, :, c][seq[:, :, c] > 0]
        scale = float(np.percentile(active, 99)) if active.size else 1.0
        scales[name] = scale if scale > 1e-9 else 1.0
    return scales


def sample_index(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of ``min(n, size)`` of ``n`` rows (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
