"""Evaluation: hold-out split, classification metrics, label matching, and the planted-persona check.

This is the only ml/ module allowed to read ``eval.planted_personas`` (synthetic ground truth): it is used
to report how well segments recover the generator's personas, never to build or name segments.
"""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np
import pandas as pd

from core.warehouse import TableNotFound, partitions, read_pandas

HOLDOUT_MODULUS = 5  # 1 in 5 users is held out


def is_holdout(user_ids: Iterable[str]) -> np.ndarray:
    """Deterministic by user_id, so the same users are held out in every training (and from every model)."""
    return np.array([zlib.crc32(str(u).encode("utf-8")) % HOLDOUT_MODULUS == 0 for u in user_ids], dtype=bool)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, k: int, present_only: bool = False
) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over segments 0..k-1 (absent classes count as 0).

    ``present_only``: average over the segments that occur in ``y_true`` or ``y_pred`` instead. For a
    subgroup (cold-start users are mostly one or two segments) a segment nobody in it belongs to, and
    nobody is predicted as, says nothing about the model and must not drag the mean to 0.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_precision": float("nan"), "macro_recall": float("nan"),
                "macro_f1": float("nan")}
    labels = sorted(set(np.unique(y_true)) | set(np.unique(y_pred))) if present_only else list(range(k))
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(p),
        "macro_recall": float(r),
        "macro_f1": float(f),
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    return classification_metrics(y_true, y_pred, k)["macro_f1"]


def hungarian_mapping(source: np.ndarray, target: np.ndarray) -> dict[int, int]:
    """Map source label ids onto target ids maximising agreement (one-to-one; unmatched ids -> -1).

    Used to compare a model trained on another teacher run (arbitrary cluster numbering) with today's
    teacher labels.
    """
    from scipy.optimize import linear_sum_assignment

    src_ids = np.unique(source)
    tgt_ids = np.unique(target)
    table = pd.crosstab(pd.Series(source, name="s"), pd.Series(target, name="t")).reindex(
        index=src_ids, columns=tgt_ids, fill_value=0
    )
    rows, cols = linear_sum_assignment(-table.to_numpy())
    mapping = {int(s): -1 for s in src_ids}
    mapping.update({int(src_ids[r]): int(tgt_ids[c]) for r, c in zip(rows, cols)})
    return mapping


def apply_mapping(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    return np.array([mapping.get(int(v), -1) for v in labels], dtype=np.int64)


def load_personas() -> pd.DataFrame | None:
    """user_id -> persona from the synthetic generator, or None on real data (table absent)."""
    try:
        personas = read_pandas("eval.planted_personas")
    except TableNotFound:
        return None
    return personas if len(personas) else None


def persona_agreement(user_ids: pd.Series, labels: np.ndarray, personas: pd.DataFrame) -> dict[str, float]:
    """ARI / NMI of segment labels against planted personas, over the users that have a persona."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    frame = pd.DataFrame({"user_id": user_ids.to_numpy(), "label": labels}).merge(personas, on="user_id")
    if len(frame) < 2:
        return {}
    return {
        "ari": float(adjusted_rand_score(frame["persona"], frame["label"])),
        "nmi": float(normalized_mutual_info_score(frame["persona"], frame["label"])),
        "users": float(len(frame)),
    }


# --- cold start and stability ------------------------------------------------------------------------
COLD_START_DAYS = 7  # "cold-start" users: fewer active days than this
# Preferred first: lifetime active days (exact, from the lifetime state) when the contract has it.
COLD_START_COLUMNS = ("lifetime_active_days", "active_days_90d")


def cold_start_mask(features: pd.DataFrame, days: int = COLD_START_DAYS) -> np.ndarray:
    """Users with fewer than ``days`` active days (lifetime if the contract has it, else 90-day window).

    Missing values count as 0 active days (a user nobody has seen act is as cold as it gets).
    """
    column = next((c for c in COLD_START_COLUMNS if c in features.columns), None)
    if column is None:
        raise ValueError(f"no active-days column ({' or '.join(COLD_START_COLUMNS)}) to find cold-start users")
    active = pd.to_numeric(features[column], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    return active < days


def stability_reference(ds: str) -> str | None:
    """The date day-to-day stability compares ds with: the latest features.user_features partition
    before ds (ds-1 in a daily run), or None when there is none."""
    earlier = [p for p in partitions("features.user_features") if p < ds]
    return earlier[-1] if earlier else None


def user_rows(ds: str) -> pd.DataFrame:
    """features.user_features for ds, one row per user (the first), rows without a user_id dropped."""
    df = read_pandas("features.user_features", ds)
    return df[df["user_id"].notna()].drop_duplicates("user_id")


def holdout_rows(ds: str) -> pd.DataFrame:
    """The held-out users' rows of features.user_features for ds, one per user."""
    df = user_rows(ds)
    return df[is_holdout(df["user_id"])].reset_index(drop=True)


def day_to_day_stability(
    users_before: Iterable[str], labels_before: np.ndarray, users: Iterable[str], labels: np.ndarray
) -> tuple[float | None, int]:
    """Day-to-day stability: the share of users labelled on both days who keep their segment, and how
    many users were on both days; (None, 0) without overlap.

    The one definition used by training's metric and by the promotion gate, both on the held-out users of
    ds and of ``stability_reference(ds)``, each day labelled by the same model.
    """
    before = pd.Series(np.asarray(labels_before), index=pd.Index(list(users_before), name="user_id"))
    now = pd.Series(np.asarray(labels), index=pd.Index(list(users), name="user_id"))
    before = before[~before.index.duplicated()]
    now = now[~now.index.duplicated()]
    both = before.index.intersection(now.index)
    if len(both) == 0:
        return None, 0
    return float((before.loc[both].to_numpy() == now.loc[both].to_numpy()).mean()), int(len(both))


def retrain_stability(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """ARI between two labelings of the same users (e.g. two trainings with different seeds).

    ARI ignores label ids, so two runs that number the same segments differently still score 1.0.
    """
    from sklearn.metrics import adjusted_rand_score

    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"labelings differ in length: {a.shape} vs {b.shape}")
    return float(adjusted_rand_score(a, b))
