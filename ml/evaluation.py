"""Evaluation: hold-out split, classification metrics, label matching, and the planted-persona check.

This is the only ml/ module allowed to read ``eval.planted_personas`` (synthetic ground truth): it is used
to report how well segments recover the generator's personas, never to build or name segments.
"""

from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np
import pandas as pd

HOLDOUT_MODULUS = 5  # 1 in 5 users is held out


def is_holdout(user_ids: Iterable[str]) -> np.ndarray:
    """Deterministic by user_id, so the same users are held out in every training (and from every model)."""
    return np.array([zlib.crc32(str(u).encode("utf-8")) % HOLDOUT_MODULUS == 0 for u in user_ids], dtype=bool)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over segments 0..k-1 (absent classes count as 0)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_precision": float("nan"), "macro_recall": float("nan"),
                "macro_f1": float("nan")}
    labels = list(range(k))
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
    from segments.catalog import TableNotFound, read_pandas

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
