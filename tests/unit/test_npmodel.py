"""The numpy replay of the Keras student gives Keras' probabilities (so scoring needs no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def test_numpy_replay_matches_keras(tmp_path):
    from ml.model import build_model
    from ml.npmodel import NumpyModel, export

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
    import keras

    from ml.npmodel import export

    inp = keras.Input(shape=(4, 2), name="sequence")
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GRU(5)(inp))
    # A GRU is not replayed in numpy: no export, the model is then served by Keras.
    assert not export(keras.Model(inp, out), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
