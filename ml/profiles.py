"""Segment profiles: what each segment looks like in raw feature units (pure pandas).

A profile is the per-segment mean of raw feature columns. It is the one definition behind the naming
rules (ml/naming.py), segment identity across retrains (ml/identity.py) and the profile heatmap of each
training run (ml/train.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def numeric_frame(features: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of ``features`` as float; unparseable and non-finite values (inf) become NaN."""
    frame = features[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    # An inf (a ratio over a zero denominator) would make the whole segment's mean inf: treat it as missing.
    return frame.where(np.isfinite(frame))


def segment_profiles(
    features: pd.DataFrame, labels: Sequence[int] | np.ndarray, columns: Sequence[str]
) -> pd.DataFrame:
    """Per-segment means of those ``columns`` present in ``features``, in raw units.

    Missing and non-finite values are ignored (a segment with no value of a feature gets NaN). Rows: one
    per segment id that occurs in ``labels`` (``labels[i]`` is the segment of row i), sorted by id;
    columns: in the order given.
    """
    present = [c for c in columns if c in features.columns]
    frame = numeric_frame(features, present)
    frame["segment_id"] = np.asarray(labels, dtype=np.int64)
    return frame.groupby("segment_id")[present].mean().sort_index()
