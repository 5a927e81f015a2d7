"""A model version's artifacts -> predictions: preprocessor + network + segment names.

Part of the model runtime: packaged with every registered version and imported from there by every
consumer (the promotion gate, Spark workers, ``mlflow.pyfunc.load_model``) through
``core.model_runtime``, so they all run the code the version was trained with. No MLflow import: Spark
workers read a downloaded model directory (``Segmenter.from_model_dir``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .network import load_network, predict_proba
from .preprocessor import Preprocessor

# Artifact keys of the logged model (see ml/pyfunc.py); network.py reads the network's two.
PREPROCESSOR_ARTIFACT = "preprocessor"
SEGMENTS_ARTIFACT = "segments"


def _read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def predictions_frame(
    probs: np.ndarray, segments: Mapping[int, Mapping[str, str]], user_ids: Any = None
) -> pd.DataFrame:
    """[user_id], segment_id, segment_name, confidence, probabilities from [N, k] probabilities (vectorised)."""
    n, k = probs.shape
    ids = probs.argmax(axis=1).astype(np.int32) if n else np.zeros(0, dtype=np.int32)
    names = np.array([segments.get(i, {}).get("name", f"segment_{i}") for i in range(k)], dtype=object)
    out = pd.DataFrame(
        {
            "segment_id": pd.Series(ids, dtype="int32"),
            "segment_name": pd.Series(names[ids] if k else [], dtype="object"),
            "confidence": pd.Series(probs.max(axis=1) if n else [], dtype="float64"),
            # One float64 array per row (a view of ``probs``): Arrow converts these without Python lists.
            "probabilities": pd.Series(list(probs), dtype="object"),
        }
    )
    if user_ids is not None:
        out.insert(0, "user_id", np.asarray(user_ids, dtype=object))
    return out


class Segmenter:
    """Preprocessor + Keras student + segment names: features.user_features rows -> predictions."""

    def __init__(self, preprocessor: Preprocessor, segments: Mapping[int, Mapping[str, str]], model: Any) -> None:
        self.preprocessor = preprocessor
        self.segments = {int(k): dict(v) for k, v in segments.items()}
        self.model = model
        self.k = int(model.output_shape[-1])

    @classmethod
    def load(cls, artifacts: Mapping[str, str], engine: str = "auto") -> "Segmenter":
        """From local artifact paths keyed like the pyfunc's ``context.artifacts``.

        Uses the numpy export of the student when the model has one (no TensorFlow import), else Keras.
        ``engine='keras'`` forces Keras (tests compare the two).
        """
        return cls(
            Preprocessor.from_json(_read_json(artifacts[PREPROCESSOR_ARTIFACT])),
            _read_json(artifacts[SEGMENTS_ARTIFACT]),
            load_network(artifacts, engine),
        )

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        static, seq = self.preprocessor.to_arrays(df)
        probs = predict_proba(self.model, static, seq)
        return predictions_frame(probs, self.segments, df["user_id"].to_numpy() if "user_id" in df else None)
