"""Scoring without MLflow: the segmenter's artifacts -> predictions, shared by the pyfunc and Spark workers.

``ml.pyfunc.SegmenterModel`` (what ``mlflow.pyfunc.load_model`` returns) and the Spark scoring job both
use ``Segmenter`` and ``predictions_frame``, so pandas and Spark give the same output. The Spark job
loads a downloaded model directory with ``Segmenter.from_model_dir`` so its Python workers import neither
MLflow nor the model's cloudpickle (a few seconds per worker on a busy 2-core machine).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ml.data import Preprocessor

# Artifact keys of the pyfunc model (see ml/pyfunc.py) and their file names inside its directory.
KERAS_ARTIFACT = "keras_model"
PREPROCESSOR_ARTIFACT = "preprocessor"
SEGMENTS_ARTIFACT = "segments"
NUMPY_ARTIFACT = "numpy_model"  # optional (ml/npmodel.py): the student replayed in numpy, no TensorFlow


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


def _load_network(artifacts: Mapping[str, str], engine: str) -> Any:
    if engine == "auto" and NUMPY_ARTIFACT in artifacts and Path(artifacts[NUMPY_ARTIFACT]).is_file():
        from ml.npmodel import NumpyModel

        return NumpyModel(artifacts[NUMPY_ARTIFACT])
    from ml import tfsetup

    tfsetup.configure()
    import keras

    # compile=False: inference only, and no optimizer state to restore.
    return keras.models.load_model(artifacts[KERAS_ARTIFACT], compile=False)


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
            _load_network(artifacts, engine),
        )

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, engine: str = "auto") -> "Segmenter":
        """From a downloaded MLflow model directory (reads the artifact paths from its MLmodel file)."""
        import yaml

        root = Path(model_dir)
        mlmodel = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
        artifacts = mlmodel["flavors"]["python_function"]["artifacts"]
        return cls.load({key: str(root / spec["path"]) for key, spec in artifacts.items()}, engine)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        from ml.model import predict_proba

        static, seq = self.preprocessor.to_arrays(df)
        probs = predict_proba(self.model, static, seq)
        return predictions_frame(probs, self.segments, df["user_id"].to_numpy() if "user_id" in df else None)
