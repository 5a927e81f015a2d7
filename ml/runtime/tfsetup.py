"""Quiet, modest TensorFlow: call ``configure()`` before the first ``import keras`` / ``tensorflow``.

Part of the model runtime (packaged with every version), so Spark Python workers get the same settings. Environment
variables already set by the caller win.
"""

from __future__ import annotations

import os

_DONE = False


def configure(threads: int | None = None) -> None:
    """Silence TF's C++ logs, pin the Keras backend, cap TF threads (default: SEGMENTS_TF_THREADS or 2)."""
    global _DONE
    if _DONE:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no INFO/WARNING banners from the C++ runtime
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN makes float results order-dependent
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import logging

    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    n = threads or int(os.environ.get("SEGMENTS_TF_THREADS", "2"))
    try:
        # Spark runs one Python worker per core: intra-op threads beyond the core count only thrash.
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # the TF runtime is already initialised in this process; keep its settings
    _DONE = True
