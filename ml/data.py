"""Feature preprocessing: features.user_features rows -> (static [N, F], sequence [N, 28, C]) float32 arrays.

Pure numpy/pandas. The fitted ``Preprocessor`` is a small JSON-serialisable object stored inside the model,
so scoring applies exactly the transformation the model was trained with. This module must stay importable
without the ``segments`` package (it is shipped in the model's code_paths): the feature contract is read
from ``core.feature_catalog`` only when fitting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
UNKNOWN = "unknown"
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
)
# Recency of something that never happened is missing: "longest ago" is the honest fill, not the median.
_FILL_WITH_MAX = ("recency_days",)
_Z_CLIP = 6.0  # winsorise z-scores: one corrupt value must not saturate the network or own a cluster
_MAX_VOCAB = 30  # per categorical column; rarer values fall into 'unknown'


def _contract() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]:
    from core.feature_catalog import CATEGORICAL_FEATURES, NUMERIC_FEATURES, SEQUENCE_CHANNELS
    from core.settings import SEQUENCE_DAYS

    return NUMERIC_FEATURES, CATEGORICAL_FEATURES, SEQUENCE_CHANNELS, SEQUENCE_DAYS


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "input") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks feature-contract columns: {', '.join(missing)}")


def _normalise_category(values: pd.Series) -> pd.Series:
    s = values.astype("object").where(values.notna(), UNKNOWN).astype(str).str.strip().str.lower()
    return s.mask(s == "", UNKNOWN)


def sequence_tensor(df: pd.DataFrame, channels: Sequence[str], days: int) -> np.ndarray:
    """Stack array columns into float64 [N, days, C]; NaN -> 0, a missing (null) sequence -> zeros."""
    n = len(df)
    out = np.zeros((n, days, len(channels)), dtype=np.float64)
    for c, name in enumerate(channels):
        for i, value in enumerate(df[name].to_numpy()):
            if value is None or (np.isscalar(value) and pd.isna(value)):
                continue
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != (days,):
                raise ValueError(
                    f"column {name} row {i}: expected a sequence of {days} days, got shape {arr.shape}"
                )
            out[i, :, c] = arr
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Preprocessor:
    numeric: list[str]
    log_features: list[str]
    fill: dict[str, float]
    mean: dict[str, float]
    std: dict[str, float]
    categories: dict[str, list[str]]  # column -> vocabulary, UNKNOWN first
    channels: list[str]
    days: int
    seq_scale: dict[str, float]
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # --- shape information -------------------------------------------------------------------------
    @property
    def static_feature_names(self) -> list[str]:
        names = list(self.numeric)
        for col, vocab in self.categories.items():
            names += [f"{col}={v}" for v in vocab]
        return names

    @property
    def n_static(self) -> int:
        return len(self.static_feature_names)

    @property
    def numeric_slice(self) -> slice:
        """The z-scored numeric block of the static array (the first len(numeric) columns)."""
        return slice(0, len(self.numeric))

    @property
    def required_columns(self) -> list[str]:
        return [*self.numeric, *self.categories, *self.channels]

    # --- transformation ------------------------------------------------------------------------------
    def _numeric_values(self, df: pd.DataFrame) -> np.ndarray:
        x = df[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        x = np.where(np.isfinite(x), x, np.nan)
        for j, name in enumerate(self.numeric):
            col = x[:, j]
            col[np.isnan(col)] = self.fill[name]
            if name in self.log_features:
                x[:, j] = np.log1p(np.clip(col, 0.0, None))
        return x

    def to_arrays(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Transform rows of features.user_features into (static float32 [N,F], seq float32 [N,days,C])."""
        require_columns(df, self.required_columns)
        x = self._numeric_values(df)
        mean = np.array([self.mean[c] for c in self.numeric])
        std = np.array([self.std[c] for c in self.numeric])
        blocks = [np.clip((x - mean) / std, -_Z_CLIP, _Z_CLIP)]
        for col, vocab in self.categories.items():
            index = {v: i for i, v in enumerate(vocab)}
            codes = _normalise_category(df[col]).map(lambda v: index.get(v, 0)).to_numpy(dtype=np.int64)
            blocks.append(np.eye(len(vocab), dtype=np.float64)[codes])
        static = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
        seq = np.log1p(np.clip(sequence_tensor(df, self.channels, self.days), 0.0, None))
        seq /= np.array([self.seq_scale[c] for c in self.channels])
        return static.astype(np.float32), seq.astype(np.float32)

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Preprocessor":
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported preprocessor format version {data.get('version')!r}")
        return cls(**data)


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
    if numeric is None or categorical is None or channels is None or days is None:
        c_num, c_cat, c_seq, c_days = _contract()
        numeric = c_num if numeric is None else numeric
        categorical = c_cat if categorical is None else categorical
        channels = c_seq if channels is None else channels
        days = c_days if days is None else days
    numeric, categorical, channels = list(numeric), list(categorical), list(channels)
    require_columns(df, [*numeric, *categorical, *channels], "feature DataFrame")
    if len(df) == 0:
        raise ValueError("cannot fit a preprocessor on an empty DataFrame")

    log_features = [c for c in numeric if any(m in c for m in _LOG_MARKERS)]
    raw = df[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    raw = np.where(np.isfinite(raw), raw, np.nan)
    fill: dict[str, float] = {}
    for j, name in enumerate(numeric):
        col = raw[:, j]
        if np.isnan(col).all():
            fill[name] = 0.0  # nothing to learn from; the z-score below is then 0 for everyone
        elif any(m in name for m in _FILL_WITH_MAX):
            fill[name] = float(np.nanmax(col))
        else:
            fill[name] = float(np.nanmedian(col))

    pre = Preprocessor(
        numeric=numeric,
        log_features=log_features,
        fill=fill,
        mean={},
        std={},
        categories={},
        channels=channels,
        days=int(days),
        seq_scale={},
    )
    x = pre._numeric_values(df)
    for j, name in enumerate(numeric):
        mu, sd = float(x[:, j].mean()), float(x[:, j].std())
        pre.mean[name] = mu
        pre.std[name] = sd if sd > 1e-9 else 1.0  # a constant column becomes all zeros, not NaN

    for col in categorical:
        counts = _normalise_category(df[col]).value_counts()
        seen = sorted(v for v in counts.index[:_MAX_VOCAB] if v != UNKNOWN)
        pre.categories[col] = [UNKNOWN, *seen]

    seq = np.log1p(np.clip(sequence_tensor(df, channels, pre.days), 0.0, None))
    for c, name in enumerate(channels):
        # 99th percentile of the non-zero days: robust to outliers and to mostly-idle channels.
        active = seq[:, :, c][seq[:, :, c] > 0]
        scale = float(np.percentile(active, 99)) if active.size else 1.0
        pre.seq_scale[name] = scale if scale > 1e-9 else 1.0
    return pre


def trajectory_summaries(seq: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per-user shape of the 28-day activity curve from a (scaled) sequence tensor [N, days, C].

    Returns ([N, 3], names): share of the window's activity in the last 7 days (0.25 = flat), in the
    first 7 days, and the least-squares slope of daily activity normalised by its mean. Fading users
    score low/negative and ramping users high/positive, which volume features alone cannot show.
    """
    activity = seq.mean(axis=2)  # [N, days]
    days = activity.shape[1]
    total = activity.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    week = min(7, days)
    flat = week / days
    last = np.where(total > 0, activity[:, -week:].sum(axis=1) / safe, flat)
    first = np.where(total > 0, activity[:, :week].sum(axis=1) / safe, flat)
    t = np.arange(days, dtype=np.float64) - (days - 1) / 2.0
    slope = (activity * t).sum(axis=1) / (t**2).sum()
    mean = total / days
    norm_slope = np.where(mean > 0, slope * days / np.where(mean > 0, mean, 1.0), 0.0)
    out = np.stack([last, first, np.clip(norm_slope, -3.0, 3.0)], axis=1)
    return out, ["last7_share", "first7_share", "activity_slope"]
