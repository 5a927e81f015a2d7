"""MLflow packaging of the segmenter: preprocessor + student + segment names + the scoring code, one model.

Every version carries a copy of ``ml/runtime/`` (artifact ``runtime``): the gate, Spark workers and
``mlflow.pyfunc.load_model`` score with that copy (``core.model_runtime``), so a version keeps predicting
what it predicted at registration whatever ``ml/`` becomes. ``SegmenterModel`` only delegates to it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import mlflow
import numpy as np
import pandas as pd

from core.model_runtime import RUNTIME_ARTIFACT, segmenter_from_artifacts
from ml.runtime.network import KERAS_ARTIFACT, NUMPY_ARTIFACT
from ml.runtime.numpy_network import export as export_numpy
from ml.runtime.preprocessor import Preprocessor
from ml.runtime.segmenter import PREPROCESSOR_ARTIFACT, SEGMENTS_ARTIFACT

RUNTIME_SOURCE = Path(__file__).resolve().parent / "runtime"


class SegmenterModel(mlflow.pyfunc.PythonModel):
    """predict(features.user_features rows) -> [user_id], segment_id, segment_name, confidence, probabilities."""

    def load_context(self, context: Any) -> None:
        # The version's own runtime, as the gate and the Spark scoring job load it: no skew between them.
        self.segmenter = segmenter_from_artifacts(context.artifacts)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.segmenter.predict(df)


def model_signature(pre: Preprocessor) -> Any:
    """Explicit signature: every contract column required (values may be null), user_id optional.

    Array columns are ``Array(double)``: MLflow 3 accepts lists or numpy arrays per row, but rejects a
    null array and integer values (no implicit int -> double cast), so pass contract-typed data.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    inputs = [ColSpec(DataType.string, "user_id", required=False)]
    inputs += [ColSpec(DataType.double, c) for c in pre.numeric]
    inputs += [ColSpec(DataType.string, c) for c in pre.categories]
    inputs += [ColSpec(Array(DataType.double), c) for c in pre.channels]
    outputs = [
        ColSpec(DataType.string, "user_id", required=False),
        ColSpec(DataType.integer, "segment_id"),
        ColSpec(DataType.string, "segment_name"),
        ColSpec(DataType.double, "confidence"),
        ColSpec(Array(DataType.double), "probabilities"),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def pip_requirements() -> list[str]:
    """Pinned runtime of the model (explicit: MLflow's inference would spawn a slow subprocess)."""
    pins = {
        "tensorflow-cpu": "2.21.0",
        "keras": "3.15.1",
        "mlflow": "3.17.2",
        "pandas": "2.3.3",
        "numpy": None,
        "scikit-learn": "1.9.1",
    }
    return [f"{pkg}=={ver or metadata.version(pkg)}" for pkg, ver in pins.items()]


def input_example(df: pd.DataFrame, pre: Preprocessor, rows: int = 3) -> pd.DataFrame:
    """A few contract rows, arrays as plain lists (JSON-serialisable)."""
    cols = [c for c in ["user_id", *pre.required_columns] if c in df.columns]
    example = df[cols].head(rows).reset_index(drop=True).copy()
    for c in pre.channels:
        example[c] = [np.asarray(v, dtype=np.float64).tolist() for v in example[c]]
    return example


def log_segmenter(
    name: str,
    keras_model: Any,
    preprocessor: Preprocessor,
    segments: Mapping[str, Mapping[str, str]],
    example: pd.DataFrame,
    registered_model_name: str | None = None,
    metadata_extra: Mapping[str, Any] | None = None,
) -> Any:
    """Log the pyfunc model in the active run (optionally registering it). Returns mlflow's ModelInfo."""
    with tempfile.TemporaryDirectory(prefix="segmenter-") as tmp:
        keras_path = Path(tmp) / "segmenter.keras"
        keras_model.save(keras_path)
        pre_path = Path(tmp) / "preprocessor.json"
        pre_path.write_text(json.dumps(preprocessor.to_json(), indent=1), encoding="utf-8")
        seg_path = Path(tmp) / "segments.json"
        seg_path.write_text(json.dumps(dict(segments), indent=1, sort_keys=True), encoding="utf-8")
        # The same network for TensorFlow-free scoring workers (ml/runtime/numpy_network.py); absent if unsupported.
        np_path = Path(tmp) / "numpy_model.npz"
        numpy_artifact = {NUMPY_ARTIFACT: str(np_path)} if export_numpy(keras_model, np_path) else {}
        runtime_path = Path(tmp) / RUNTIME_ARTIFACT
        shutil.copytree(RUNTIME_SOURCE, runtime_path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=SegmenterModel(),
            artifacts={
                KERAS_ARTIFACT: str(keras_path),
                PREPROCESSOR_ARTIFACT: str(pre_path),
                SEGMENTS_ARTIFACT: str(seg_path),
                RUNTIME_ARTIFACT: str(runtime_path),
                **numpy_artifact,
            },
            signature=model_signature(preprocessor),
            input_example=input_example(example, preprocessor),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
            metadata={"segments": dict(segments), **(metadata_extra or {})},
        )
