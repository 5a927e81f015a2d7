"""LSTM autoencoder of the 28-day behaviour sequence: its bottleneck is the teacher's trajectory embedding.

The encoder reads the preprocessed sequence [N, days, C] and squeezes it into ``latent`` numbers; the
decoder must rebuild the whole curve from them. Two users with equal 28-day totals but opposite
trajectories (fading vs ramping) need different codes to be rebuilt, so K-means on the code separates
them where totals cannot. Training-time only: the registered student never needs the encoder.

Fitted on a seeded sample of users (an embedding of the curve shape does not need 100k examples), large
batches, early stopping: a couple of minutes at most on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.data import sample_index
from ml.runtime import tfsetup

LATENT = 8
UNITS = 32
SMOOTH_DAYS = 7  # one week: also averages out the weekday/weekend rhythm


@dataclass
class AutoencoderFit:
    encoder: Any  # keras.Model: sequence [N, days, C] -> embedding [N, latent]
    sample_size: int
    epochs_run: int
    best_val_loss: float
    history: dict[str, list[float]] = field(default_factory=dict)


def build_autoencoder(days: int, n_channels: int, latent: int = LATENT, units: int = UNITS) -> tuple[Any, Any]:
    """(autoencoder, encoder): LSTM -> Dense(latent) -> repeat -> LSTM -> per-day Dense(C)."""
    tfsetup.configure()
    import keras
    from keras import layers

    seq_in = keras.Input(shape=(days, n_channels), name="sequence")
    h = layers.LSTM(units, name="encoder_lstm")(seq_in)
    code = layers.Dense(latent, name="embedding")(h)  # linear: K-means wants unsquashed coordinates
    d = layers.RepeatVector(days, name="repeat")(code)
    d = layers.LSTM(units, return_sequences=True, name="decoder_lstm")(d)
    out = layers.TimeDistributed(layers.Dense(n_channels), name="reconstruction")(d)
    autoencoder = keras.Model(seq_in, out, name="sequence_autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="mse")
    encoder = keras.Model(seq_in, code, name="sequence_encoder")
    return autoencoder, encoder


def smooth_sequence(seq: np.ndarray, window: int = SMOOTH_DAYS) -> np.ndarray:
    """Centred moving average over days (edges repeat the end value): the curve without day-level noise."""
    from scipy.ndimage import uniform_filter1d

    if window <= 1:
        return seq.astype(np.float32)
    return uniform_filter1d(seq.astype(np.float32), size=window, axis=1, mode="nearest")


def fit_autoencoder(
    seq: np.ndarray,
    seed: int,
    latent: int = LATENT,
    epochs: int = 20,
    sample_size: int = 10_000,
    batch_size: int = 256,
    patience: int = 3,
    smooth_days: int = SMOOTH_DAYS,
    verbose: int = 0,
) -> AutoencoderFit:
    """Train on a sample of ``seq`` (deterministic given ``seed``); returns the encoder.

    Denoising target: the encoder sees the raw daily sequence but the decoder rebuilds its ``smooth_days``
    moving average. Whether a sparse user was active on day 12 or 13 is noise nobody can encode; the
    level and direction of the curve are what the code should hold.
    """
    tfsetup.configure()
    import keras

    if seq.ndim != 3 or len(seq) < 2:
        raise ValueError(f"need a [N>=2, days, channels] sequence tensor, got shape {seq.shape}")
    keras.utils.set_random_seed(seed)
    rows = sample_index(len(seq), sample_size, seed)
    x = seq[rows].astype(np.float32)
    target = smooth_sequence(x, smooth_days)
    autoencoder, encoder = build_autoencoder(x.shape[1], x.shape[2], latent)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True,
                                         min_delta=1e-5)
    fit = autoencoder.fit(x, target, validation_split=0.1, epochs=max(1, epochs), batch_size=batch_size,
                          shuffle=True, callbacks=[stop], verbose=verbose)
    hist = {key: [float(v) for v in values] for key, values in fit.history.items()}
    val = hist.get("val_loss", [float("nan")])
    return AutoencoderFit(encoder=encoder, sample_size=len(rows), epochs_run=len(val),
                          best_val_loss=float(np.nanmin(val)), history=hist)


def embed(encoder: Any, seq: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """float64 [N, latent] codes of every user's sequence."""
    if len(seq) == 0:
        return np.zeros((0, int(encoder.output_shape[-1])))
    return np.asarray(encoder.predict(seq.astype(np.float32), batch_size=batch_size, verbose=0), dtype=np.float64)
