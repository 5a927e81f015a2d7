"""Inference of the Keras student in plain numpy, so scoring workers need not import TensorFlow.

Importing TensorFlow costs each Spark Python worker several seconds (tens of seconds on a busy 2-core
machine), more than scoring 50k users takes. The student is a small functional graph (Dense, LSTM,
Concatenate, Dropout, ...), whose forward pass is a few matrix products. At logging time
``export(model)`` writes the graph config and every layer's weights (``numpy_model.npz``); at scoring
time ``NumpyModel`` replays the graph. A model with a layer not supported here gets no export and is
served by Keras, so the fallback is automatic; ``tests/unit/test_ml_runtime.py`` checks both give the same
probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMAT_VERSION = 1
SUPPORTED = {"InputLayer", "Dense", "LSTM", "Concatenate", "Dropout", "Average", "Add"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softmax": _softmax,
}


def _activation(config: dict[str, Any], key: str = "activation") -> str:
    name = config.get(key, "linear")
    return name if isinstance(name, str) else ""


def _unsupported(layer: dict[str, Any]) -> str | None:
    """Why a layer of the Keras config cannot be replayed here (None: it can)."""
    cls, cfg = layer["class_name"], layer["config"]
    if cls not in SUPPORTED:
        return f"layer type {cls}"
    if cls == "Dense" and _activation(cfg) not in ACTIVATIONS:
        return f"Dense activation {cfg.get('activation')!r}"
    if cls == "LSTM":
        if (_activation(cfg), _activation(cfg, "recurrent_activation")) != ("tanh", "sigmoid"):
            return "LSTM activations other than tanh/sigmoid"
        if cfg.get("return_sequences") or cfg.get("go_backwards") or cfg.get("stateful") or not cfg.get("use_bias", True):
            return "LSTM options (return_sequences/go_backwards/stateful/no bias)"
    if cls == "Concatenate" and cfg.get("axis", -1) not in (-1,):
        return "Concatenate on an axis other than -1"
    return None


def _inbound(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 functional config)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    if len(nodes) > 1:
        raise ValueError(f"layer {layer['config']['name']} is called more than once")
    names: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if obj.get("class_name") == "__keras_tensor__":
                names.append(obj["config"]["keras_history"][0])
            else:
                for v in obj.values():
                    walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(nodes[0].get("args", []))
    return names


def export(model: Any, path: str | Path) -> bool:
    """Write ``model``'s graph and weights to ``path`` (.npz) if every layer is supported; else False."""
    config = model.get_config()
    layers = config.get("layers")
    if not layers or any(_unsupported(layer) for layer in layers):
        return False
    arrays = {
        f"{layer.name}/{i}": np.asarray(w, dtype=np.float32)
        for layer in model.layers
        for i, w in enumerate(layer.get_weights())
    }
    meta = {"version": FORMAT_VERSION, "config": config}
    np.savez(path, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    return True


class NumpyModel:
    """The exported graph, with the tiny part of the Keras model API that ``network.predict_proba`` uses."""

    def __init__(self, path: str | Path) -> None:
        with np.load(path) as data:
            meta = json.loads(bytes(data["__meta__"]).decode("utf-8"))
            self.weights = {k: data[k] for k in data.files if k != "__meta__"}
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported numpy model format {meta.get('version')!r}")
        config = meta["config"]
        self.layers = config["layers"]
        for layer in self.layers:
            reason = _unsupported(layer)
            if reason:
                raise ValueError(f"cannot run {reason} in numpy")
        self.inputs = {key: hist[0] for key, hist in _named(config["input_layers"]).items()}
        outputs = config["output_layers"]
        self.output = (outputs[0] if isinstance(outputs[0], list) else outputs)[0]
        by_name = {l["config"]["name"]: l for l in self.layers}
        last = by_name[self.output]
        while "units" not in last["config"]:  # e.g. an ensemble's Average: the width of what feeds it
            last = by_name[_inbound(last)[0]]
        self.output_shape = (None, int(last["config"]["units"]))

    def _w(self, name: str, i: int) -> np.ndarray:
        return self.weights[f"{name}/{i}"]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        values: dict[str, np.ndarray] = {}
        for key, layer_name in self.inputs.items():
            values[layer_name] = np.asarray(inputs[key], dtype=np.float32)
        for layer in self.layers:
            cls, cfg = layer["class_name"], layer["config"]
            name = cfg["name"]
            if cls == "InputLayer":
                continue
            args = [values[n] for n in _inbound(layer)]
            if cls == "Dense":
                y = args[0] @ self._w(name, 0)
                if cfg.get("use_bias", True):
                    y = y + self._w(name, 1)
                values[name] = ACTIVATIONS[_activation(cfg)](y)
            elif cls == "LSTM":
                values[name] = self._lstm(name, args[0], int(cfg["units"]))
            elif cls == "Concatenate":
                values[name] = np.concatenate(args, axis=-1)
            elif cls == "Dropout":
                values[name] = args[0]  # inference: identity
            elif cls == "Average":
                values[name] = sum(args) / len(args)
            elif cls == "Add":
                values[name] = sum(args)
        return values[self.output]

    def _lstm(self, name: str, x: np.ndarray, units: int) -> np.ndarray:
        """Keras LSTM (gates i, f, c, o; tanh / sigmoid), last hidden state."""
        kernel, recurrent, bias = self._w(name, 0), self._w(name, 1), self._w(name, 2)
        n, steps, _ = x.shape
        projected = x @ kernel + bias  # [N, T, 4u]: the input part of every step at once
        h = np.zeros((n, units), dtype=np.float32)
        c = np.zeros((n, units), dtype=np.float32)
        for t in range(steps):
            z = projected[:, t, :] + h @ recurrent
            i = _sigmoid(z[:, :units])
            f = _sigmoid(z[:, units:2 * units])
            g = np.tanh(z[:, 2 * units:3 * units])
            o = _sigmoid(z[:, 3 * units:])
            c = f * c + i * g
            h = o * np.tanh(c)
        return h

    def predict(self, inputs: dict[str, np.ndarray], batch_size: int = 8192, verbose: int = 0) -> np.ndarray:
        """Keras-like predict: in slices of ``batch_size`` rows (bounds the [N, T, 4u] buffer)."""
        n = len(next(iter(inputs.values())))
        parts = [
            self({k: v[start:start + batch_size] for k, v in inputs.items()})
            for start in range(0, n, batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.output_shape[1]), dtype=np.float32)


def _named(input_layers: Any) -> dict[str, list[Any]]:
    """Keras 3 stores input_layers as {key: [name, 0, 0]} for dict inputs, or a list of [name, 0, 0]."""
    if isinstance(input_layers, dict):
        return dict(input_layers)
    if input_layers and not isinstance(input_layers[0], list):
        input_layers = [input_layers]
    return {hist[0]: hist for hist in input_layers}
