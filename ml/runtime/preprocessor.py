"""The fitted feature transformation: features.user_features rows -> (static [N, F], sequence [N, days, C]).

Part of the model runtime: packaged with every registered version, so scoring applies exactly the
transformation the model was trained with. Pure numpy/pandas; relative imports only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
UNKNOWN = "unknown"
Z_CLIP = 6.0  # winsorise z-scores: one corrupt value must not saturate the network or own a cluster


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "input") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks feature-contract columns: {', '.join(missing)}")


def normalise_category(values: pd.Series) -> pd.Series:
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
        blocks = [np.clip((x - mean) / std, -Z_CLIP, Z_CLIP)]
        for col, vocab in self.categories.items():
            index = {v: i for i, v in enumerate(vocab)}
            codes = normalise_category(df[col]).map(lambda v: index.get(v, 0)).to_numpy(dtype=np.int64)
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
