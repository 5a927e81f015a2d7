"""The student network: LSTM over the 28-day behaviour sequence + Dense over static features -> softmax(k).

The student learns the teacher's segments from raw-ish features so that scoring is one forward pass and the
segment of a user moves smoothly with behaviour (K-means re-fits would renumber clusters every day).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ml.runtime import tfsetup

LSTM_UNITS = 32
STATIC_UNITS = 32
HEAD_UNITS = 32


@dataclass
class StudentHistory:
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: dict[str, list[float]] = field(default_factory=dict)


def _student_graph(static_in: Any, seq_in: Any, k: int, prefix: str, lstm_units: int, static_units: int,
                   head_units: int, dropout: float) -> Any:
    """The student's layers on given inputs; ``prefix`` keeps layer names unique inside an ensemble."""
    from keras import layers

    s = layers.Dense(static_units, activation="relu", name=f"{prefix}static_dense")(static_in)
    q = layers.LSTM(lstm_units, name=f"{prefix}sequence_lstm")(seq_in)
    h = layers.Concatenate(name=f"{prefix}concat")([s, q])
    h = layers.Dropout(dropout, name=f"{prefix}dropout")(h)
    h = layers.Dense(head_units, activation="relu", name=f"{prefix}head_dense")(h)
    return layers.Dense(k, activation="softmax", name=f"{prefix}segment_probs")(h)


def build_model(
    n_static: int,
    days: int,
    n_channels: int,
    k: int,
    lstm_units: int = LSTM_UNITS,
    static_units: int = STATIC_UNITS,
    head_units: int = HEAD_UNITS,
    dropout: float = 0.1,
) -> Any:
    """Keras functional model with inputs {'static': [F], 'sequence': [days, C]} and softmax(k) output."""
    tfsetup.configure()
    import keras

    static_in = keras.Input(shape=(n_static,), name="static")
    seq_in = keras.Input(shape=(days, n_channels), name="sequence")
    out = _student_graph(static_in, seq_in, k, "", lstm_units, static_units, head_units, dropout)
    model = keras.Model(inputs={"static": static_in, "sequence": seq_in}, outputs=out, name="segmenter")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def ensemble_model(members: Sequence[Any], lstm_units: int = LSTM_UNITS) -> Any:
    """One Keras model averaging the members' probabilities (a single member is returned unchanged).

    Each member's layers are rebuilt under a prefix (m0_, m1_, ...) on shared inputs and get the trained
    weights, then an Average layer: one flat graph, so the pyfunc stores and serves it like a single
    student (Keras file and the numpy export of ml/runtime/numpy_network.py alike).
    """
    if len(members) == 1:
        return members[0]
    tfsetup.configure()
    import keras
    from keras import layers

    first = members[0]
    n_static = int(first.input["static"].shape[-1])
    days, n_channels = (int(d) for d in first.input["sequence"].shape[1:])
    k = int(first.output_shape[-1])
    static_in = keras.Input(shape=(n_static,), name="static")
    seq_in = keras.Input(shape=(days, n_channels), name="sequence")
    outs = [
        _student_graph(static_in, seq_in, k, f"m{i}_", lstm_units, STATIC_UNITS, HEAD_UNITS, 0.1)
        for i in range(len(members))
    ]
    combined = keras.Model(inputs={"static": static_in, "sequence": seq_in},
                           outputs=layers.Average(name="segment_probs")(outs), name="segmenter_ensemble")
    for i, member in enumerate(members):
        for layer in member.layers:
            if layer.get_weights():
                combined.get_layer(f"m{i}_{layer.name}").set_weights(layer.get_weights())
    return combined


def balanced_sample_weights(labels: np.ndarray, k: int) -> np.ndarray:
    """sklearn's 'balanced' class weights (n / (n_present_classes * count)) per sample."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    present = counts > 0
    weights = np.zeros(k)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights[labels].astype(np.float32)


def _validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified where every class has >= 2 members (keras' validation_split takes the tail)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    try:
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # too few samples per class for a stratified split of this size
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(tr), np.sort(va)


def fit_student(
    static: np.ndarray,
    seq: np.ndarray,
    labels: np.ndarray,
    k: int,
    epochs: int,
    seed: int,
    batch_size: int = 256,
    validation_fraction: float = 0.15,
    patience: int = 4,
    lstm_units: int = LSTM_UNITS,
    verbose: int = 0,
) -> tuple[Any, StudentHistory]:
    """Train on (static, seq) -> teacher labels; early stopping on a held-aside validation slice."""
    tfsetup.configure()
    import keras

    keras.utils.set_random_seed(seed)  # python, numpy and TF seeds: same data + seed -> same weights
    labels = np.asarray(labels, dtype=np.int32)
    tr, va = _validation_split(labels, validation_fraction, seed)
    model = build_model(static.shape[1], seq.shape[1], seq.shape[2], k, lstm_units=lstm_units)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, min_delta=1e-4
    )
    fit = model.fit(
        {"static": static[tr], "sequence": seq[tr]},
        labels[tr],
        sample_weight=balanced_sample_weights(labels[tr], k),
        validation_data=({"static": static[va], "sequence": seq[va]}, labels[va]),
        epochs=max(1, int(epochs)),
        batch_size=batch_size,
        shuffle=True,
        callbacks=[stop],
        verbose=verbose,
    )
    hist = {key: [float(v) for v in values] for key, values in fit.history.items()}
    val = hist.get("val_loss", [float("nan")])
    best = int(np.nanargmin(val)) if np.isfinite(val).any() else len(val) - 1
    return model, StudentHistory(
        epochs_run=len(val), best_epoch=best + 1, best_val_loss=float(val[best]), history=hist
    )


def fit_ensemble(
    static: np.ndarray,
    seq: np.ndarray,
    labels: np.ndarray,
    k: int,
    epochs: int,
    seeds: Sequence[int],
    verbose: int = 0,
    **kwargs: Any,
) -> tuple[Any, list[StudentHistory]]:
    """One student per seed, averaged by ``ensemble_model``; returns (model, one history per member)."""
    if not seeds:
        raise ValueError("an ensemble needs at least one seed")
    members, histories = [], []
    for seed in seeds:
        model, history = fit_student(static, seq, labels, k, epochs, int(seed), verbose=verbose, **kwargs)
        members.append(model)
        histories.append(history)
    return ensemble_model(members), histories


def ensemble_seeds(seed: int, n: int) -> list[int]:
    """Member seeds of an n-model ensemble: the run's seed first, so n=1 is the plain student."""
    return [seed + 1000 * i for i in range(max(1, int(n)))]
