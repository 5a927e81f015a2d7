"""The student network of a model version: its numpy replay when the version has one, else Keras.

Part of the model runtime (packaged with every registered version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

KERAS_ARTIFACT = "keras_model"
NUMPY_ARTIFACT = "numpy_model"  # optional (numpy_network.py): the student replayed in numpy, no TensorFlow


def load_network(artifacts: Mapping[str, str], engine: str = "auto") -> Any:
    """The numpy replay (no TensorFlow import) when present and ``engine='auto'``, else the Keras model."""
    if engine == "auto" and NUMPY_ARTIFACT in artifacts and Path(artifacts[NUMPY_ARTIFACT]).is_file():
        from .numpy_network import NumpyModel

        return NumpyModel(artifacts[NUMPY_ARTIFACT])
    from . import tfsetup

    tfsetup.configure()
    import keras

    # compile=False: inference only, and no optimizer state to restore.
    return keras.models.load_model(artifacts[KERAS_ARTIFACT], compile=False)


def predict_proba(model: Any, static: np.ndarray, seq: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """float64 [N, k] probabilities, rows renormalised (float32 softmax sums are off by ~1e-7)."""
    if len(static) == 0:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float64)
    probs = model.predict({"static": static, "sequence": seq}, batch_size=batch_size, verbose=0)
    probs = np.asarray(probs, dtype=np.float64)
    return probs / probs.sum(axis=1, keepdims=True)
