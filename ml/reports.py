"""Evaluation and feature-selection artifacts: PNG plots and small report tables for each training run.

Pure functions (no MLflow, no Spark): ``ml/train.py`` calls them and logs what they return or write.
Every ``*_png`` function writes one PNG to ``path`` (parent folders are created), closes its figure and
returns the path. Segment ids are 0..k-1 everywhere, and ``names[i]`` / ``labels[i]`` is the name of id i.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: jobs run in Spark/Airflow workers without a display

import matplotlib.pyplot as plt  # noqa: E402  (must come after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FEATURE_SELECTION_MAX_ROWS = 20_000  # MI is a k-NN estimate, O(n log n) per feature: a sample ranks as well
ANNOTATE_MAX_CELLS = 200  # write the raw mean into each heatmap cell only when the text stays legible
DPI = 110


def _save(fig: plt.Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive otherwise; training runs make many
    return out


def _label_arrays(y_true: Sequence, y_pred: Sequence, what: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"{what}: y_true and y_pred must be 1-D, got shapes {t.shape} and {p.shape}")
    if len(t) != len(p):
        raise ValueError(f"{what}: y_true has {len(t)} labels but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError(f"{what}: no labels to evaluate (y_true is empty)")
    return t, p


def _check_names(names: Sequence[str], what: str) -> list[str]:
    names = [str(n) for n in names]
    if not names:
        raise ValueError(f"{what}: need at least one segment name (names[i] is the name of segment id i)")
    return names


# --------------------------------------------------------------------------------------------- tables


def per_segment_report(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support for each segment id 0..k-1, plus a ``macro avg`` row.

    Index: segment ids 0..k-1 then ``"macro avg"``; column ``segment`` holds the names. Segments never
    predicted score 0 precision (no warning); predicted ids outside 0..k-1 (e.g. -1 for unmatched) count
    as misses for the true segment. The macro row averages over all k segments, its support is the total.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = _label_arrays(y_true, y_pred, "per_segment_report")
    names = _check_names(names, "per_segment_report")
    ids = list(range(len(names)))
    outside = sorted(set(np.unique(t).tolist()) - set(ids))
    if outside:
        raise ValueError(
            f"per_segment_report: y_true has segment ids {outside[:5]} outside 0..{len(ids) - 1} "
            f"({len(names)} names given)"
        )
    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=ids, zero_division=0)
    table = pd.DataFrame(
        {"segment": names, "precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(ids, dtype=object, name="segment_id"),
    )
    table.loc["macro avg"] = ["macro avg", precision.mean(), recall.mean(), f1.mean(), int(support.sum())]
    return table.astype({"precision": float, "recall": float, "f1": float, "support": int})


def _numeric_features(X: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Numeric and boolean columns as float; everything else (strings, categories, dates) is skipped."""
    types = pd.api.types
    keep = [c for c in X.columns if types.is_numeric_dtype(X[c]) and not types.is_complex_dtype(X[c])]
    skipped = [str(c) for c in X.columns if c not in keep]
    values = X[keep].astype(float).replace([np.inf, -np.inf], np.nan)
    # Missing values: the column median (0 if the column is all missing), so one gap does not drop a user.
    values = values.fillna(values.median()).fillna(0.0)
    return values, skipped


def feature_selection_report(X: pd.DataFrame, labels: Sequence, seed: int = 0) -> pd.DataFrame:
    """Mutual information and chi-square of each numeric feature against the segment labels.

    - Columns: numeric and boolean dtypes are scored; others (object/string, category, datetime) are
      skipped and listed in ``report.attrs["skipped_columns"]``. Missing/infinite values take the
      column median.
    - Rows: at most ``FEATURE_SELECTION_MAX_ROWS`` (20,000), a seeded random sample without replacement
      when there are more, for speed; ``report.attrs["rows_used"]`` says how many.
    - ``mutual_info``: ``sklearn.feature_selection.mutual_info_classif(random_state=seed)`` in nats;
      0/1 columns are treated as discrete. It is a k-nearest-neighbour estimate: exact duplicate rows
      inflate it, so pass one row per user.
    - ``chi2`` / ``chi2_p``: ``sklearn.feature_selection.chi2`` on min-max scaled features (chi2 needs
      non-negative values).
    - Constant columns carry no information: mutual_info 0, chi2 0, chi2_p 1 (set directly, no 0/0).

    Returns columns ``feature, mutual_info, chi2, chi2_p`` sorted by mutual_info descending (ties by chi2,
    then name, so the order is deterministic).
    """
    from sklearn.feature_selection import chi2, mutual_info_classif

    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"feature_selection_report: X must be a pandas DataFrame, got {type(X).__name__}")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"feature_selection_report: X has {len(X)} rows but labels has shape {y.shape}")
    if pd.isna(pd.Series(y)).any():
        raise ValueError("feature_selection_report: labels contain missing values")
    if len(np.unique(y)) < 2:
        raise ValueError("feature_selection_report: need at least 2 distinct labels to score features")
    values, skipped = _numeric_features(X)
    if values.shape[1] == 0:
        raise ValueError(f"feature_selection_report: no numeric columns to score (skipped: {skipped[:10]})")

    if len(values) > FEATURE_SELECTION_MAX_ROWS:
        rows = np.random.default_rng(seed).choice(len(values), FEATURE_SELECTION_MAX_ROWS, replace=False)
        rows.sort()
        values, y = values.iloc[rows], y[rows]
    matrix = values.to_numpy()

    lo, hi = matrix.min(axis=0), matrix.max(axis=0)
    varying = hi > lo
    mi = np.zeros(matrix.shape[1])
    chi = np.zeros(matrix.shape[1])
    p_value = np.ones(matrix.shape[1])
    if varying.any():
        sub = matrix[:, varying]
        binary = np.all((sub == 0) | (sub == 1), axis=0)
        mi[varying] = mutual_info_classif(sub, y, discrete_features=binary, random_state=seed)
        scaled = (sub - lo[varying]) / (hi[varying] - lo[varying])
        chi[varying], p_value[varying] = chi2(scaled, y)

    report = pd.DataFrame({"feature": [str(c) for c in values.columns], "mutual_info": mi, "chi2": chi,
                           "chi2_p": p_value})
    report = report.sort_values(["mutual_info", "chi2", "feature"], ascending=[False, False, True])
    report = report.reset_index(drop=True)
    report.attrs.update(rows_used=int(len(matrix)), skipped_columns=skipped)
    return report


# --------------------------------------------------------------------------------------------- plots


def confusion_matrix_png(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str],
                         path: str | Path) -> Path:
    """Confusion matrix over segment ids 0..k-1 (``labels[i]`` names id i).

    Cells show counts and the share of the true segment; shading is row-normalised (recall), so small
    segments are as visible as large ones. Ids outside 0..k-1 are not drawn.
    """
    from sklearn.metrics import confusion_matrix

    t, p = _label_arrays(y_true, y_pred, "confusion_matrix_png")
    names = _check_names(labels, "confusion_matrix_png")
    k = len(names)
    counts = confusion_matrix(t, p, labels=list(range(k)))
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=float), where=row_totals > 0)

    size = 2.0 + 0.9 * k
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true segment")
    for i in range(k):
        for j in range(k):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{counts[i, j]:,}\n{shares[i, j]:.0%}", ha="center", va="center", color=colour,
                    fontsize=8)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted segment (student)")
    ax.set_ylabel("true segment (teacher)")
    ax.set_title(f"Confusion matrix, {len(t):,} held-out users")
    return _save(fig, path)


def profile_heatmap_png(profiles: pd.DataFrame, path: str | Path) -> Path:
    """Segment profiles: rows = segments (index = names), columns = features (segment means).

    Colour is the per-feature z-score of the segment means, so features in different units share one
    scale (red = above the other segments, blue = below); cells show the raw means when the table is
    small enough to read. Non-numeric columns are skipped.
    """
    if not isinstance(profiles, pd.DataFrame):
        raise ValueError(f"profile_heatmap_png: profiles must be a DataFrame, got {type(profiles).__name__}")
    numeric = profiles.select_dtypes(include=["number", "bool"]).astype(float)
    if numeric.shape[0] == 0 or numeric.shape[1] == 0:
        raise ValueError(
            f"profile_heatmap_png: need at least one segment row and one numeric feature column, "
            f"got shape {profiles.shape} ({numeric.shape[1]} numeric columns)"
        )
    means = numeric.to_numpy()
    centre = np.nanmean(means, axis=0)
    spread = np.nanstd(means, axis=0)
    # A feature equal in every segment (spread 0) says nothing about them: z = 0, not 0/0.
    z = np.divide(means - centre, spread, out=np.zeros_like(means), where=spread > 0)
    limit = max(float(np.nanmax(np.abs(z))), 1.0)

    n_seg, n_feat = means.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 2.5 + 0.45 * n_feat), max(3.0, 1.5 + 0.5 * n_seg)))
    image = ax.imshow(z, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="z-score of segment mean (per feature)")
    if n_seg * n_feat <= ANNOTATE_MAX_CELLS:
        for i in range(n_seg):
            for j in range(n_feat):
                colour = "white" if abs(z[i, j]) > 0.6 * limit else "black"
                ax.text(j, i, f"{means[i, j]:.3g}", ha="center", va="center", color=colour, fontsize=7)
    ax.set_xticks(range(n_feat), [str(c) for c in numeric.columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_seg), [str(s) for s in numeric.index])
    ax.set_title("Segment profiles (colour: z-score across segments; text: segment mean)")
    return _save(fig, path)


def segment_sizes_png(sizes: dict[str, int], path: str | Path) -> Path:
    """Horizontal bars of users per segment (largest on top), each labelled with count and share."""
    if not sizes:
        raise ValueError("segment_sizes_png: sizes is empty (expected segment name -> number of users)")
    counts = pd.Series({str(k): v for k, v in sizes.items()}, dtype=float)
    if counts.isna().any() or (counts < 0).any():
        raise ValueError(f"segment_sizes_png: sizes must be non-negative counts, got {dict(sizes)}")
    counts = counts.sort_values()  # barh draws bottom-up, so the largest ends on top
    total = counts.sum()
    shares = counts / total if total > 0 else counts * 0.0

    fig, ax = plt.subplots(figsize=(8.0, 1.0 + 0.45 * len(counts)))
    bars = ax.barh(counts.index, counts.to_numpy(), color="tab:blue")
    bar_text = [f"{int(c):,} ({s:.1%})" for c, s in zip(counts, shares)]
    ax.bar_label(bars, labels=bar_text, padding=3, fontsize=8)
    ax.set_xlim(0, max(float(counts.max()), 1.0) * 1.25)  # room for the labels
    ax.set_xlabel("users")
    ax.set_title(f"Segment sizes, {int(total):,} users")
    return _save(fig, path)


def _curve_panels(history: dict[str, Sequence[float]]) -> list[str]:
    """Metric base names, one panel each: loss first, accuracy second, the rest in history order."""
    bases: list[str] = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    first = [b for b in ("loss", "accuracy") if b in bases]
    return first + [b for b in bases if b not in first]


def training_curves_png(history: dict[str, Sequence[float]], path: str | Path) -> Path:
    """Keras ``History.history`` as one panel per metric (``x`` and ``val_x`` together), epochs from 1.

    The loss panel marks the epoch with the lowest ``val_loss`` (what early stopping restores).
    """
    curves = {str(k): [float(v) for v in values] for k, values in (history or {}).items() if len(values)}
    if not curves:
        raise ValueError("training_curves_png: history has no non-empty series (e.g. {'loss': [...]})")
    panels = _curve_panels(curves)

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, base in zip(axes[0], panels):
        for key, style in ((base, "-"), (f"val_{base}", "--")):
            if key in curves:
                epochs = np.arange(1, len(curves[key]) + 1)
                ax.plot(epochs, curves[key], style, marker="o", markersize=3, label=key)
        if base == "loss" and "val_loss" in curves:
            best = int(np.nanargmin(curves["val_loss"])) + 1
            ax.axvline(best, color="grey", linestyle=":", label=f"best val_loss (epoch {best})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Student training curves")
    fig.tight_layout()
    return _save(fig, path)


def k_selection_png(ks: Sequence[int], silhouettes: Sequence[float], inertias: Sequence[float], chosen_k: int,
                    path: str | Path) -> Path:
    """Silhouette (higher is better) and the elbow curve (K-means inertia) per k, chosen k marked."""
    if not (len(ks) == len(silhouettes) == len(inertias)) or len(ks) == 0:
        raise ValueError(
            f"k_selection_png: ks, silhouettes and inertias must be non-empty and of equal length, got "
            f"{len(ks)}, {len(silhouettes)} and {len(inertias)}"
        )
    if chosen_k not in list(ks):
        raise ValueError(f"k_selection_png: chosen_k={chosen_k} is not one of the evaluated ks {list(ks)}")
    order = np.argsort(np.asarray(ks))
    k_arr = np.asarray(ks)[order]
    sil = np.asarray(silhouettes, dtype=float)[order]
    inertia = np.asarray(inertias, dtype=float)[order]

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.5, 6.0))
    top.plot(k_arr, sil, marker="o", color="tab:blue")
    top.set_ylabel("silhouette (higher is better)")
    bottom.plot(k_arr, inertia, marker="o", color="tab:orange")
    bottom.set_ylabel("inertia (elbow)")
    bottom.set_xlabel("k (number of segments)")
    chosen = int(np.flatnonzero(k_arr == chosen_k)[0])
    for ax, values in ((top, sil), (bottom, inertia)):
        ax.axvline(chosen_k, color="grey", linestyle=":")
        ax.plot([chosen_k], [values[chosen]], marker="*", markersize=14, color="tab:red",
                label=f"chosen k = {chosen_k}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    bottom.set_xticks(k_arr)
    top.set_title("Choosing k")
    fig.tight_layout()
    return _save(fig, path)


def feature_selection_png(report: pd.DataFrame, path: str | Path, top: int = 25) -> Path:
    """The ``top`` features by mutual information (left) next to their chi-square statistic (right).

    Chi-square is drawn on a log axis (its values span orders of magnitude); ``*`` marks p < 0.001.
    """
    needed = {"feature", "mutual_info", "chi2", "chi2_p"}
    if not isinstance(report, pd.DataFrame) or not needed <= set(report.columns):
        got = list(report.columns) if isinstance(report, pd.DataFrame) else type(report).__name__
        raise ValueError(f"feature_selection_png: report needs columns {sorted(needed)}, got {got}")
    if len(report) == 0:
        raise ValueError("feature_selection_png: report has no features")
    if top < 1:
        raise ValueError(f"feature_selection_png: top must be >= 1, got {top}")
    shown = report.sort_values("mutual_info", ascending=False).head(top).iloc[::-1]  # best on top
    names = shown["feature"].astype(str).to_list()

    fig, (left, right) = plt.subplots(1, 2, sharey=True, figsize=(11.0, 1.2 + 0.3 * len(shown)))
    left.barh(names, shown["mutual_info"].to_numpy(), color="tab:blue")
    left.set_xlabel("mutual information with segment (nats)")
    # Constant features have chi2 = 0, which a log axis cannot show: draw them at a tiny floor.
    chi = shown["chi2"].to_numpy(dtype=float)
    positive = chi[chi > 0]
    floor = positive.min() / 10 if len(positive) else 1e-3
    right.barh(names, np.where(chi > 0, chi, floor), color="tab:green")
    right.set_xscale("log")
    right.set_xlabel("chi-square (min-max scaled features, log)")
    for y, (value, p) in enumerate(zip(np.where(chi > 0, chi, floor), shown["chi2_p"].to_numpy(dtype=float))):
        if p < 1e-3:
            right.text(value, y, " *", va="center", fontsize=8)
    fig.suptitle(f"Feature selection: top {len(shown)} of {len(report)} features by mutual information "
                 "(* chi2 p < 0.001)")
    fig.tight_layout()
    return _save(fig, path)
