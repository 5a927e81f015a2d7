"""The model runtime (ml/runtime/): self-contained, importable from a copy, and its numpy replay of the
Keras student gives Keras' probabilities (so scoring needs no TensorFlow)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.model_runtime import ModelWithoutRuntime, import_runtime, segmenter_from_artifacts

RUNTIME = Path(__file__).resolve().parents[2] / "ml" / "runtime"


def test_runtime_imports_only_itself_relatively_and_third_party_libraries():
    # An absolute `ml.` import would reach the installed package instead of the copy a model carries.
    allowed = {"__future__", "dataclasses", "typing", "json", "pathlib", "os", "logging", "numpy", "pandas",
               "keras", "tensorflow"}
    for path in RUNTIME.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed, f"{path.name}: from {node.module} import ..."
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, f"{path.name}: import {alias.name}"


def test_a_copy_of_the_runtime_is_imported_as_its_own_module(tmp_path):
    # Two model versions in one process (the gate scores champion and challenger) each run their own copy.
    old, new = tmp_path / "v1" / "runtime", tmp_path / "v2" / "runtime"
    shutil.copytree(RUNTIME, old)
    shutil.copytree(RUNTIME, new)
    (new / "preprocessor.py").write_text((new / "preprocessor.py").read_text() + "\nMARK = 'v2'\n")
    first, second = import_runtime(old), import_runtime(new)
    assert first.__name__ != second.__name__ and first.__name__ != "ml.runtime"
    assert import_runtime(old) is first  # cached: a Spark worker loads it once
    second_pre = __import__(f"{second.__name__}.preprocessor", fromlist=["MARK"])
    assert second_pre.MARK == "v2"
    assert not hasattr(__import__(f"{first.__name__}.preprocessor", fromlist=["x"]), "MARK")
    assert Path(second_pre.__file__).is_relative_to(new)


def test_a_model_without_packaged_runtime_is_refused_with_a_hint():
    with pytest.raises(ModelWithoutRuntime, match="no 'runtime' artifact") as info:
        segmenter_from_artifacts({"preprocessor": "p.json", "segments": "s.json", "keras_model": "m.keras"})
    assert "retrain" in info.value.hint


def test_numpy_replay_matches_keras(tmp_path):
    pytest.importorskip("tensorflow")
    from ml.model import build_model
    from ml.runtime.numpy_network import NumpyModel, export

    # The real student architecture with random (untrained) weights: the replay must agree at any weights.
    model = build_model(n_static=5, days=6, n_channels=3, k=4, lstm_units=8, static_units=7, head_units=6)
    rng = np.random.default_rng(0)
    x = {"static": rng.normal(size=(50, 5)).astype("float32"),
         "sequence": rng.normal(size=(50, 6, 3)).astype("float32")}
    assert export(model, tmp_path / "m.npz")
    replay = NumpyModel(tmp_path / "m.npz")
    expected = model.predict(x, verbose=0)
    got = replay.predict(x, batch_size=16)  # several slices, uneven last one
    assert got.shape == (50, 4) and replay.output_shape == (None, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_unsupported_layers_are_not_exported(tmp_path):
    keras = pytest.importorskip("keras")

    from ml.runtime.numpy_network import export

    inp = keras.Input(shape=(4, 2), name="sequence")
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GRU(5)(inp))
    # A GRU is not replayed in numpy: no export, the model is then served by Keras.
    assert not export(keras.Model(inp, out), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
