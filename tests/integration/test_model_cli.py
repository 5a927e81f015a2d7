"""A model's life on a real SQLite registry: identity across a shifted retrain, the promotion gate with
stability, a contract change, `segments model list|promote|rollback`, and the scoring schema check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.integration.test_train import make_features

D1, D2, D3 = "2024-03-29", "2024-03-30", "2024-03-31"
REVENUE_COLUMNS = ["revenue_7d", "revenue_30d", "revenue_90d", "avg_order_value_90d"]


def _write(df: pd.DataFrame, ds: str, drop: tuple[str, ...] = ()) -> None:
    """Write a features.user_features partition; ``drop`` leaves columns out of the files entirely."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.tables import table
    from core.warehouse import partition_path, write_arrow

    data = pa.Table.from_pandas(df, schema=table("features.user_features").arrow_schema(), preserve_index=False)
    if not drop:
        write_arrow("features.user_features", data, ds)
        return
    path = partition_path("features.user_features", ds)
    import os

    os.makedirs(path, exist_ok=True)
    pq.write_table(data.drop_columns(list(drop)), os.path.join(path, "part-0.parquet"))


def _shifted(seed: int) -> pd.DataFrame:
    """Another day of the same kind of shop: new noise, and everyone spends 30% more."""
    df, _ = make_features(seed=seed)
    df[REVENUE_COLUMNS] = df[REVENUE_COLUMNS] * 1.3
    df["seq_revenue"] = [list(np.asarray(v) * 1.3) for v in df["seq_revenue"]]
    return df


def _by_persona(version: int, features: pd.DataFrame, personas: pd.DataFrame) -> dict[str, tuple[int, str]]:
    """persona -> (most common segment id, its name) as the registered model scores ``features``."""
    import mlflow

    out = mlflow.pyfunc.load_model(f"models:/user_segmenter/{version}").predict(features)
    frame = out.merge(personas, on="user_id")
    top = frame.groupby("persona")["segment_id"].agg(lambda s: s.mode().iloc[0])
    names = dict(zip(frame["segment_id"], frame["segment_name"]))
    return {p: (int(i), names[i]) for p, i in top.items()}


@pytest.fixture
def platform(tmp_path, monkeypatch):
    import pyarrow as pa

    from core.warehouse import write_arrow

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    for var in ("MLFLOW_TRACKING_URI", "SEGMENTS_MLFLOW_ARTIFACTS", "SEGMENTS_WAREHOUSE", "SEGMENTS_MODEL_NAME"):
        monkeypatch.delenv(var, raising=False)
    # Four planted behaviours -> k=4; the cheap teacher keeps three trainings short.
    monkeypatch.setenv("SEGMENTS_N_SEGMENTS", "4")
    monkeypatch.setenv("SEGMENTS_SEGMENT_METHOD", "feature_kmeans")
    features, personas = make_features(seed=0)
    _write(features, D1)
    write_arrow("eval.planted_personas", pa.Table.from_pandas(personas, preserve_index=False))
    yield features, personas
    import mlflow

    if mlflow.active_run():
        mlflow.end_run()


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_identity_gate_contract_change_and_model_commands(platform, monkeypatch, capsys):
    from app import cli
    from core import feature_catalog
    from core.model_registry import mlflow_client, model_version_by_alias
    from ml.train import train

    features1, personas = platform
    client = mlflow_client()
    first = train(D1, epochs=4, seed=42)
    assert first.promoted and first.model_version == 1

    # --- a retrain on shifted data (another day, +30% revenue, other seed) keeps ids and names --------
    features2 = _shifted(seed=1)
    _write(features2, D2)
    second = train(D2, epochs=4, seed=7)
    before, after = _by_persona(1, features1, personas), _by_persona(2, features2, personas)
    assert after == before, (before, after)
    identity = json.loads((_artifact(client, second.run_id, "segment_identity.json")))
    assert identity["matching"]["champion_version"] == "1" and len(identity["matching"]["pairs"]) == 4
    assert all(p["name_kept"] for p in identity["matching"]["pairs"])

    # --- the gate compared F1 and day-to-day stability against D1 and logged why -------------------------
    gate = json.loads(_artifact(client, second.run_id, "gate.json"))
    assert gate["stability_reference_ds"] == D1 and gate["stability_users"] > 0
    assert gate["new_stability"] is not None and gate["champion_stability"] is not None
    tags = client.get_run(second.run_id).data.tags
    assert tags["gate.decision"] == ("promoted" if second.promoted else "rejected")
    assert "day-to-day stability vs 2024-03-29" in tags["gate.reason"]

    # --- contract change: 'age' leaves the feature table; the champion cannot score it -> promoted ------
    without_age = tuple(c for c in feature_catalog.NUMERIC_FEATURES if c != "age")
    monkeypatch.setattr(feature_catalog, "NUMERIC_FEATURES", without_age)
    _write(_shifted(seed=2), D3, drop=("age",))
    third = train(D3, epochs=2, seed=42)
    reason = client.get_run(third.run_id).data.tags["gate.reason"]
    assert third.promoted and "contract change" in reason and "missing from the table: age" in reason
    assert str(model_version_by_alias("champion", client).version) == "3"
    demoted = str(model_version_by_alias("previous", client).version)

    # --- segments model list | rollback | promote ---------------------------------------------------------
    capsys.readouterr()
    assert cli.main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert "champion" in listing and D3 in listing and "previous" in listing
    assert cli.main(["model", "rollback", "--reason", "test"]) == 0
    assert str(model_version_by_alias("champion", client).version) == demoted
    assert cli.main(["model", "rollback"]) == 1
    err = capsys.readouterr().err
    assert "error: model user_segmenter has no 'previous' version to roll back to" in err and "hint: " in err

    # --- scoring with the rolled-back champion refuses the new table, naming the column, before Spark ---
    assert cli.main(["score", "--ds", D3]) == 1
    err = capsys.readouterr().err
    assert f"error: champion v{demoted}" in err and "1 missing from the table: age" in err and "hint: " in err

    assert cli.main(["model", "promote", "--version", "3", "--reason", "contract change"]) == 0
    assert str(model_version_by_alias("champion", client).version) == "3"
    assert cli.main(["model", "promote", "--version", "3"]) == 1  # already champion: a clear error


def _artifact(client, run_id: str, path: str) -> str:
    local = client.download_artifacts(run_id, path)
    with open(local, encoding="utf-8") as fh:
        return fh.read()
