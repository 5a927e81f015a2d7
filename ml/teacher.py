"""Teacher segmentation: K-means over one of three user representations; the LSTM student learns it.

Methods (setting ``SEGMENTS_SEGMENT_METHOD``), all clustered and evaluated the same way:

``rfm_kmeans``
    The common baseline: standardised recency / frequency / monetary only (purchase recency, 90-day
    orders, 90-day revenue; log1p + z-score from the preprocessor).
``feature_kmeans``
    The full preprocessed feature vector (numeric z-scores + category one-hots) after PCA keeping
    ``PCA_VARIANCE`` of the variance.
``sequence_kmeans`` (default)
    The behaviour features (numeric z-scores without demographics) after a *whitening* PCA, joined with
    the whitened embedding of the 28-day sequence from an LSTM autoencoder (ml/autoencoder.py). Whitening
    matters: the ~20 volume features are strongly correlated (one "how active" direction holds half the
    variance), and unwhitened they drown every other signal; the embedding carries the trajectory, so
    users with equal totals but opposite curves (fading vs ramping) land in different segments.

k is fixed (``SEGMENTS_N_SEGMENTS=6``) or chosen by the best silhouette within ``SEGMENTS_K_RANGE``
(``SEGMENTS_N_SEGMENTS=auto``); every candidate's inertia is kept for the elbow curve. K-means for k
selection runs on a seeded sample and silhouettes on a smaller one, so selection stays cheap at 100k users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ml.data import sample_index
from ml.runtime.preprocessor import Preprocessor

METHODS: tuple[str, ...] = ("rfm_kmeans", "feature_kmeans", "sequence_kmeans")
DEFAULT_METHOD = "sequence_kmeans"
# Recency / frequency / monetary columns of the feature contract: purchase recency, and frequency and
# monetary over the 90-day window and the whole history (the lifetime pair lifted a purchase log's
# segments level with K-means on whole-history RFM, docs/model.md "Teacher methods").
RFM_COLUMNS: tuple[str, ...] = ("purchase_recency_days", "orders_90d", "revenue_90d", "lifetime_orders",
                                "lifetime_revenue")
# Demographic inputs the student may use but behaviour segments ignore.
DEMOGRAPHIC_NUMERIC: tuple[str, ...] = ("age",)
PCA_VARIANCE = 0.9  # share of variance the PCA keeps (feature_kmeans and sequence_kmeans)
EMBEDDING_COMPONENTS = 4  # whitened principal directions of the sequence embedding kept
# Weight of the (whitened, unit-variance) embedding block against the whitened behaviour block: enough
# to split trajectories, not enough to let day-level noise of sparse users make its own clusters.
EMBEDDING_WEIGHT = 0.6
KMEANS_N_INIT = 10
K_SELECTION_SAMPLE = 20_000  # users K-means sees when comparing candidate ks
SILHOUETTE_SAMPLE = 5_000  # users the silhouette of each candidate is computed on
FIT_SAMPLE = 50_000  # PCA is fitted on at most this many users (then applied to everyone)


@dataclass
class KSelection:
    ks: list[int]
    silhouettes: list[float]
    inertias: list[float]  # on the selection sample (elbow curve)
    chosen: int
    fixed: bool  # True: k came from the setting, the curve is informative only


@dataclass
class TeacherResult:
    labels: np.ndarray  # int32 [N], 0..k-1, numbered by decreasing segment size
    centroids: np.ndarray  # [k, D] in teacher feature space
    feature_names: list[str]
    inertia: float
    method: str = DEFAULT_METHOD
    silhouette: float = float("nan")  # of the final labels, on a sample
    k_selection: KSelection | None = None
    info: dict[str, Any] = field(default_factory=dict)  # PCA / autoencoder facts worth logging

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])


# --- representations ---------------------------------------------------------------------------------
def _numeric_index(pre: Preprocessor, names: Sequence[str]) -> list[int]:
    missing = [n for n in names if n not in pre.numeric]
    if missing:
        raise ValueError(f"feature contract lacks the columns this method needs: {', '.join(missing)}")
    return [pre.numeric.index(n) for n in names]


def behaviour_columns(pre: Preprocessor) -> list[str]:
    """Every numeric contract feature except demographics: what users *do* (new catalog features join)."""
    return [n for n in pre.numeric if n not in DEMOGRAPHIC_NUMERIC]


def rfm_matrix(pre: Preprocessor, static: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """[N, 5] standardised R, F, M, lifetime F and M (the preprocessor already log1p'd and z-scored them)."""
    idx = _numeric_index(pre, RFM_COLUMNS)
    return static[:, pre.numeric_slice][:, idx].astype(np.float64), list(RFM_COLUMNS)


@dataclass
class Projection:
    """A PCA fitted on the varying columns of a block (constant columns carry nothing and break ratios)."""

    columns: np.ndarray  # indices of the varying input columns
    pca: Any | None  # None: no varying column, the block projects to width 0

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.pca is None:
            return np.zeros((len(x), 0))
        return self.pca.transform(x[:, self.columns])

    @property
    def n_components(self) -> int:
        return 0 if self.pca is None else int(self.pca.n_components_)

    def info(self, prefix: str) -> dict[str, Any]:
        ratio = np.zeros(0) if self.pca is None else self.pca.explained_variance_ratio_
        return {
            f"{prefix}_components": self.n_components,
            f"{prefix}_input_dims": int(len(self.columns)),
            f"{prefix}_explained_variance": float(ratio.sum()),
            f"{prefix}_explained_variance_ratio": [round(float(v), 5) for v in ratio],
        }


def fit_pca(x: np.ndarray, n_components: float | int, seed: int, whiten: bool, sample: int = FIT_SAMPLE) -> Projection:
    """sklearn PCA on the varying columns of a seeded sample of rows (all rows when few).

    A float ``n_components`` keeps that share of the variance; an int keeps that many components.
    """
    from sklearn.decomposition import PCA

    rows = sample_index(len(x), sample, seed)
    fit_rows = x[rows]
    columns = np.flatnonzero(fit_rows.std(axis=0) > 1e-9)
    if len(columns) == 0 or len(rows) < 2:
        return Projection(columns, None)
    if isinstance(n_components, int):
        n_components = max(1, min(n_components, len(columns), len(rows)))
    pca = PCA(n_components=n_components, whiten=whiten, svd_solver="full", random_state=seed)
    return Projection(columns, pca.fit(fit_rows[:, columns]))


def feature_matrix(pre: Preprocessor, static: np.ndarray, seed: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """The full preprocessed static vector projected on the PCs holding ``PCA_VARIANCE`` of the variance."""
    x = static.astype(np.float64)
    pca = fit_pca(x, PCA_VARIANCE, seed, whiten=False)
    names = [f"pc{i + 1}" for i in range(pca.n_components)]
    return pca.transform(x), names, pca.info("pca")


def sequence_matrix(
    pre: Preprocessor, static: np.ndarray, embedding: np.ndarray, seed: int
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Whitened behaviour PCs joined with ``EMBEDDING_WEIGHT`` x the whitened sequence-embedding PCs."""
    idx = _numeric_index(pre, behaviour_columns(pre))
    behaviour = static[:, pre.numeric_slice][:, idx].astype(np.float64)
    pca = fit_pca(behaviour, PCA_VARIANCE, seed, whiten=True)
    emb_pca = fit_pca(embedding.astype(np.float64), EMBEDDING_COMPONENTS, seed, whiten=True)
    x = np.concatenate([pca.transform(behaviour), EMBEDDING_WEIGHT * emb_pca.transform(embedding)], axis=1)
    names = [f"pc{i + 1}" for i in range(pca.n_components)] + [f"seq_pc{i + 1}" for i in range(emb_pca.n_components)]
    if x.shape[1] == 0:
        raise ValueError("no behaviour feature and no sequence embedding varies across users: nothing to cluster")
    return x, names, {**pca.info("pca"), **emb_pca.info("embedding_pca")}


# --- clustering ----------------------------------------------------------------------------------------
def _kmeans(k: int, seed: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)


def sampled_silhouette(x: np.ndarray, labels: np.ndarray, seed: int, size: int = SILHOUETTE_SAMPLE) -> float:
    """Silhouette on a seeded sample (O(n^2) otherwise); NaN when fewer than 2 clusters are present."""
    from sklearn.metrics import silhouette_score

    rows = sample_index(len(x), size, seed)
    if len(np.unique(labels[rows])) < 2 or len(rows) < 3:
        return float("nan")
    return float(silhouette_score(x[rows], labels[rows]))


def select_k(
    x: np.ndarray,
    k_range: tuple[int, int],
    seed: int,
    fixed: int | None = None,
    fit_sample: int = K_SELECTION_SAMPLE,
    silhouette_sample: int = SILHOUETTE_SAMPLE,
) -> KSelection:
    """Silhouette and inertia for every k in ``k_range``; the best silhouette wins unless ``fixed`` is set.

    Ties go to the smaller k (simpler segmentation). ks above the number of sampled users are skipped.
    """
    low, high = k_range
    rows = sample_index(len(x), fit_sample, seed)
    sub = x[rows]
    ks, sils, inertias = [], [], []
    for k in range(low, high + 1):
        if k >= len(sub):
            break
        km = _kmeans(k, seed).fit(sub)
        ks.append(k)
        inertias.append(float(km.inertia_))
        sils.append(sampled_silhouette(sub, km.labels_, seed, silhouette_sample))
    if fixed is not None:
        return KSelection(ks, sils, inertias, int(fixed), fixed=True)
    if not ks:
        raise ValueError(f"no k in {low}-{high} fits {len(sub)} users")
    scores = np.nan_to_num(np.array(sils), nan=-np.inf)
    return KSelection(ks, sils, inertias, ks[int(np.argmax(scores))], fixed=False)


def fit_teacher(features: np.ndarray, k: int, seed: int, n_init: int = KMEANS_N_INIT) -> TeacherResult:
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


def teacher_matrix(
    method: str, pre: Preprocessor, static: np.ndarray, seq: np.ndarray, seed: int, verbose: int = 0
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """The [N, D] matrix K-means clusters for ``method`` (trains the autoencoder for sequence_kmeans)."""
    if method == "rfm_kmeans":
        x, names = rfm_matrix(pre, static)
        return x, names, {}
    if method == "feature_kmeans":
        return feature_matrix(pre, static, seed)
    if method == "sequence_kmeans":
        from ml.autoencoder import embed, fit_autoencoder

        ae = fit_autoencoder(seq, seed, verbose=verbose)
        x, names, info = sequence_matrix(pre, static, embed(ae.encoder, seq), seed)
        info.update({"autoencoder_sample": ae.sample_size, "autoencoder_epochs": ae.epochs_run,
                     "autoencoder_val_loss": ae.best_val_loss, "autoencoder_history": ae.history})
        return x, names, info
    raise ValueError(f"unknown segmentation method {method!r}; choose one of {', '.join(METHODS)}")


def run_teacher(
    pre: Preprocessor,
    static: np.ndarray,
    seq: np.ndarray,
    k: int | None,
    seed: int,
    method: str = DEFAULT_METHOD,
    k_range: tuple[int, int] = (4, 8),
    verbose: int = 0,
) -> TeacherResult:
    """Representation -> k (fixed, or by silhouette in ``k_range``) -> K-means on all users."""
    x, names, info = teacher_matrix(method, pre, static, seq, seed, verbose)
    selection = select_k(x, k_range, seed, fixed=k)
    result = fit_teacher(x, selection.chosen, seed)
    result.feature_names = names
    result.method = method
    result.k_selection = selection
    result.silhouette = sampled_silhouette(x, result.labels, seed)
    result.info = info
    return result
