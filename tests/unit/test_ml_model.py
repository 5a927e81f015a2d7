"""Student: class weights, ensemble averaging and determinism, on tiny arrays (a few seconds of Keras)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.model import balanced_sample_weights, build_model, ensemble_model, ensemble_seeds, fit_student
from ml.runtime.network import predict_proba


def test_class_weights_balance_a_small_segment():
    # 6 users in segment 0, 2 in segment 1, none in 2: weight = n / (present classes * count).
    w = balanced_sample_weights(np.array([0, 0, 0, 0, 0, 0, 1, 1]), k=3)
    np.testing.assert_allclose(w, [8 / 12] * 6 + [8 / 4] * 2)
    assert w[:6].sum() == pytest.approx(w[6:].sum())  # each present segment carries the same total weight


def test_ensemble_seeds_start_with_the_run_seed():
    assert ensemble_seeds(42, 1) == [42] and ensemble_seeds(42, 3) == [42, 1042, 2042]
    assert ensemble_seeds(7, 0) == [7]  # at least one model


def tiny_data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    static = (rng.normal(size=(n, 4)) + labels[:, None]).astype(np.float32)
    seq = (rng.uniform(size=(n, 5, 2)) * (labels[:, None, None] + 1) / 3).astype(np.float32)
    return static, seq, labels


def test_ensemble_model_averages_member_probabilities(tmp_path):
    static, seq, _ = tiny_data()
    members = []
    for seed in (1, 2):
        import keras

        keras.utils.set_random_seed(seed)
        members.append(build_model(4, 5, 2, k=3))
    combined = ensemble_model(members)
    expected = (predict_proba(members[0], static, seq) + predict_proba(members[1], static, seq)) / 2
    np.testing.assert_allclose(predict_proba(combined, static, seq), expected, atol=1e-6)
    assert ensemble_model(members[:1]) is members[0]  # one member: the plain student
    # One flat graph with prefixed copies of each member's layers (what the numpy export replays).
    assert {"m0_sequence_lstm", "m1_sequence_lstm", "segment_probs"} <= {layer.name for layer in combined.layers}
    from ml.runtime.numpy_network import NumpyModel, export

    assert export(combined, tmp_path / "ensemble.npz")  # TensorFlow-free scoring serves the ensemble too
    replay = NumpyModel(tmp_path / "ensemble.npz")
    assert replay.output_shape == (None, 3)
    np.testing.assert_allclose(predict_proba(replay, static, seq), expected, atol=1e-5)


def test_student_is_deterministic_given_a_seed():
    static, seq, labels = tiny_data()
    a, _ = fit_student(static, seq, labels, 3, epochs=2, seed=5, batch_size=16)
    b, _ = fit_student(static, seq, labels, 3, epochs=2, seed=5, batch_size=16)
    np.testing.assert_array_equal(predict_proba(a, static, seq), predict_proba(b, static, seq))


def test_balanced_weights():
    # 3 of class 0, 1 of class 1, class 2 absent: n / (2 present classes * count).
    np.testing.assert_allclose(balanced_sample_weights(np.array([0, 0, 0, 1]), 3), [4 / 6] * 3 + [2.0])
