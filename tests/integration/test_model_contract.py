"""One model contract: every consumer of a registered version runs the scoring code packaged with it.

The gate's path (``core.model_runtime.load_segmenter`` on the downloaded version), the Spark scoring
job's workers and ``mlflow.pyfunc.load_model`` give the same predictions, and all of them run the
version's own copy of ``ml/runtime/``: a change to that copy shows in each, a change to the installed
``ml`` package in none.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]

# Appended to the packaged copy's segmenter.py: Segmenter.predict looks predictions_frame up at call time.
MARKER_PATCH = '''

_unmarked = predictions_frame


def predictions_frame(probs, segments, user_ids=None):
    out = _unmarked(probs, segments, user_ids)
    out["segment_name"] = "packaged:" + out["segment_name"]
    return out
'''


@pytest.fixture(scope="module")
def champion_dir(trained_platform):
    from core.model_runtime import local_model_dir
    from jobs.score import resolve_champion

    champion = resolve_champion(DS)
    return local_model_dir(champion.uri, f"contract-v{champion.version}")


def _spark_scores(spark, model_dir) -> pd.DataFrame:
    from core import warehouse
    from jobs.score import score_users

    features = warehouse.read_spark(spark, "features.user_features", ds=DS).drop("ds")
    return score_users(features, model_dir).toPandas().sort_values("user_id").reset_index(drop=True)


def _features() -> pd.DataFrame:
    from core import warehouse

    return warehouse.read_pandas("features.user_features", DS).sort_values("user_id").reset_index(drop=True)


def test_gate_path_and_spark_workers_score_alike(champion_dir, spark):
    from core.model_runtime import load_segmenter

    gate = load_segmenter(champion_dir).predict(_features())
    workers = _spark_scores(spark, champion_dir)
    assert len(gate) == len(workers) > 500
    assert gate["user_id"].tolist() == workers["user_id"].tolist()
    # Same code, same parameters: the same segment for every user. The network computes in float32, and
    # Spark scores the users in other batches (and with one BLAS thread per worker) than one pandas call,
    # so probabilities agree to float32 resolution (measured: at most 1.6e-7 apart), not bit for bit.
    np.testing.assert_array_equal(gate["segment_id"].to_numpy(), workers["segment_id"].to_numpy())
    assert gate["segment_name"].tolist() == workers["segment_name"].tolist()
    np.testing.assert_allclose(np.stack(gate["probabilities"]), np.stack(workers["probabilities"]),
                               rtol=0, atol=1e-6)


def test_every_consumer_runs_the_packaged_copy_not_the_installed_ml(champion_dir, spark, tmp_path, monkeypatch):
    import mlflow

    import ml.runtime.segmenter as installed
    from core.model_runtime import load_segmenter

    patched = tmp_path / "patched-model"
    shutil.copytree(champion_dir, patched)
    packaged = patched / "artifacts" / "runtime" / "segmenter.py"
    packaged.write_text(packaged.read_text() + MARKER_PATCH)
    features = _features()

    for name, out in [("gate", load_segmenter(patched).predict(features)),
                      ("spark", _spark_scores(spark, patched)),
                      ("pyfunc", mlflow.pyfunc.load_model(str(patched)).predict(features))]:
        assert out["segment_name"].str.startswith("packaged:").all(), name
    assert not hasattr(installed, "_unmarked")  # the installed module was never touched

    # The other way round: an edit of the installed ml/ changes nothing for the registered version.
    monkeypatch.setattr(installed, "predictions_frame", lambda *a, **k: pd.DataFrame({"segment_id": []}))
    unchanged = load_segmenter(champion_dir).predict(features)
    assert len(unchanged) == len(features) and not unchanged["segment_name"].str.startswith("packaged:").any()
