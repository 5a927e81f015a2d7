"""Teacher segmentation: K-means over behaviour features; the LSTM student learns to reproduce it.

Clusters are built on the z-scored numeric features (behaviour, not demographics: categorical one-hots and
age are left out so segments describe what users do) plus trajectory summaries of the 28-day sequence,
so that fading (at-risk) and ramping (new-and-growing) users separate even at similar 90-day volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.data import Preprocessor, trajectory_summaries

# Demographic inputs the student may use but the teacher ignores.
_EXCLUDED_NUMERIC = ("age",)
# The trajectory block has 3 columns against ~30 numeric ones (many of them correlated volume
# measures); upweighting keeps the shape of the curve from being drowned out.
TRAJECTORY_WEIGHT = 2.0


@dataclass
class TeacherResult:
    labels: np.ndarray  # int32 [N], 0..k-1, numbered by decreasing segment size
    centroids: np.ndarray  # [k, D] in teacher feature space
    feature_names: list[str]
    inertia: float

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])


def teacher_features(pre: Preprocessor, static: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The [N, D] matrix K-means clusters: numeric behaviour z-scores + standardised trajectory shape."""
    keep = [j for j, name in enumerate(pre.numeric) if name not in _EXCLUDED_NUMERIC]
    numeric = static[:, pre.numeric_slice][:, keep].astype(np.float64)
    traj, traj_names = trajectory_summaries(seq.astype(np.float64))
    sd = traj.std(axis=0)
    traj = (traj - traj.mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0) * TRAJECTORY_WEIGHT
    names = [pre.numeric[j] for j in keep] + traj_names
    return np.concatenate([numeric, traj], axis=1), names


def fit_teacher(features: np.ndarray, k: int, seed: int, n_init: int = 10) -> TeacherResult:
    """K-means with ``k`` clusters; labels renumbered so segment 0 is the largest (stable ids)."""
    from sklearn.cluster import KMeans

    n = features.shape[0]
    if k < 1:
        raise ValueError(f"number of segments must be >= 1, got {k}")
    if n < k:
        raise ValueError(f"cannot form {k} segments from {n} users: need at least {k} users")
    km = KMeans(n_clusters=k, n_init=max(5, n_init), random_state=seed)
    raw = km.fit_predict(features)
    sizes = np.bincount(raw, minlength=k)
    # Order by size desc, ties by original id: deterministic and easier to read in reports.
    order = sorted(range(k), key=lambda c: (-sizes[c], c))
    remap = np.empty(k, dtype=np.int32)
    remap[order] = np.arange(k, dtype=np.int32)
    return TeacherResult(
        labels=remap[raw].astype(np.int32),
        centroids=km.cluster_centers_[order],
        feature_names=[],
        inertia=float(km.inertia_),
    )


def run_teacher(pre: Preprocessor, static: np.ndarray, seq: np.ndarray, k: int, seed: int) -> TeacherResult:
    features, names = teacher_features(pre, static, seq)
    result = fit_teacher(features, k, seed)
    result.feature_names = names
    return result
