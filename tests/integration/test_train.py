"""End-to-end training against a real SQLite MLflow registry in a temporary SEGMENTS_HOME."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.feature_catalog import CATEGORICAL_FEATURES, NUMERIC_FEATURES, SEQUENCE_CHANNELS
from core.settings import SEQUENCE_DAYS

DS = "2024-03-31"

# Per pattern: daily sessions at day 0 and day 27 (linear in between), purchase rate per session,
# revenue per purchase, discount share, tenure range.
PATTERNS = {
    "loyal": dict(start=3.0, end=3.0, buy=0.5, price=60.0, discount=0.05, tenure=(400, 1500)),
    "fading": dict(start=3.0, end=0.05, buy=0.15, price=30.0, discount=0.2, tenure=(300, 1200)),
    "ramping": dict(start=0.05, end=3.0, buy=0.15, price=25.0, discount=0.2, tenure=(5, 40)),
    "browser": dict(start=2.0, end=2.0, buy=0.0, price=0.0, discount=0.0, tenure=(100, 900)),
}


def make_features(n_users: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic features.user_features rows with 4 clearly distinct behaviours, and their personas."""
    rng = np.random.default_rng(seed)
    names = list(PATTERNS)
    rows, personas = [], []
    t = np.arange(SEQUENCE_DAYS) / (SEQUENCE_DAYS - 1)
    for i in range(n_users):
        persona = names[i % len(names)]
        p = PATTERNS[persona]
        rate = (p["start"] + (p["end"] - p["start"]) * t) * rng.uniform(0.7, 1.3)
        sessions = rng.poisson(rate).astype(float)
        views = rng.poisson(sessions * 4).astype(float)
        purchases = rng.binomial(sessions.astype(int), p["buy"]).astype(float)
        revenue = purchases * p["price"] * rng.uniform(0.8, 1.2, SEQUENCE_DAYS)
        seq = {
            "seq_sessions": sessions,
            "seq_views": views,
            "seq_searches": rng.poisson(sessions).astype(float),
            "seq_add_to_carts": np.minimum(views, purchases + rng.poisson(sessions * 0.3)),
            "seq_purchases": purchases,
            "seq_revenue": revenue,
            "seq_dwell_minutes": views * rng.uniform(0.5, 1.5),
        }
        active = np.flatnonzero(sessions)
        row: dict[str, object] = {"user_id": f"u{i:05d}"}
        row["recency_days"] = float(SEQUENCE_DAYS - 1 - active[-1]) if active.size else 60.0
        bought = np.flatnonzero(purchases)
        row["purchase_recency_days"] = float(SEQUENCE_DAYS - 1 - bought[-1]) if bought.size else np.nan
        for w in (7, 30, 90):
            days = min(w, SEQUENCE_DAYS)
            scale = w / days  # pretend the older part of the window looks like the visible part
            last = slice(SEQUENCE_DAYS - days, SEQUENCE_DAYS)
            row[f"active_days_{w}d"] = float((sessions[last] > 0).sum() * scale)
            row[f"sessions_{w}d"] = float(sessions[last].sum() * scale)
            row[f"views_{w}d"] = float(views[last].sum() * scale)
            row[f"add_to_carts_{w}d"] = float(seq["seq_add_to_carts"][last].sum() * scale)
            row[f"purchases_{w}d"] = float(purchases[last].sum() * scale)
            row[f"orders_{w}d"] = float(purchases[last].sum() * scale)
            row[f"revenue_{w}d"] = float(revenue[last].sum() * scale)
        v30, c30, p30 = row["views_30d"], row["add_to_carts_30d"], row["purchases_30d"]
        row["dwell_per_view_30d"] = float(seq["seq_dwell_minutes"].sum() / v30) if v30 else np.nan
        row["view_to_cart_30d"] = float(c30 / v30) if v30 else np.nan
        row["cart_to_purchase_30d"] = float(min(1.0, p30 / c30)) if c30 else np.nan
        row["discount_share_90d"] = float(np.clip(p["discount"] + rng.normal(0, 0.03), 0, 1))
        orders = row["orders_90d"]
        row["avg_order_value_90d"] = float(row["revenue_90d"] / orders) if orders else np.nan
        recent, early = sessions[-14:].sum(), sessions[:14].sum()
        row["activity_trend"] = float((recent - early) / (recent + early + 1))
        r_recent, r_early = revenue[-14:].sum(), revenue[:14].sum()
        row["spend_trend"] = float((r_recent - r_early) / (r_recent + r_early + 1))
        row["age"] = float(rng.integers(18, 70)) if rng.random() > 0.1 else np.nan
        row["tenure_days"] = float(rng.integers(*p["tenure"]))
        row["gender"] = rng.choice(["f", "m", None])
        row["occupation"] = rng.choice(["student", "engineer", "teacher", "retired"])
        row["city_tier"] = rng.choice(["tier1", "tier2", "tier3"])
        row["device"] = rng.choice(["mobile", "desktop", "tablet"])
        row.update({c: seq[c].tolist() for c in SEQUENCE_CHANNELS})
        rows.append(row)
        personas.append({"user_id": row["user_id"], "persona": persona})
    df = pd.DataFrame(rows)
    # Contract columns this fixture does not model (the catalog grows): missing values, which the
    # preprocessor imputes (numeric) or maps to 'unknown' (categorical).
    for c in NUMERIC_FEATURES:
        if c not in df.columns:
            df[c] = np.nan
    for c in CATEGORICAL_FEATURES:
        if c not in df.columns:
            df[c] = None
    assert set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) | set(SEQUENCE_CHANNELS) <= set(df.columns)
    return df, pd.DataFrame(personas)


@pytest.fixture()
def platform(tmp_path, monkeypatch):
    """An isolated platform: warehouse + SQLite MLflow under tmp, the synthetic partition written."""
    import pyarrow as pa

    from core.tables import table
    from core.warehouse import write_arrow

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    for var in ("MLFLOW_TRACKING_URI", "SEGMENTS_MLFLOW_ARTIFACTS", "SEGMENTS_WAREHOUSE", "SEGMENTS_N_SEGMENTS",
                "SEGMENTS_SEGMENT_METHOD", "SEGMENTS_ENSEMBLE_SEEDS", "SEGMENTS_K_RANGE",
                "SEGMENTS_MODEL_NAME"):
        monkeypatch.delenv(var, raising=False)
    features, personas = make_features()
    schema = table("features.user_features").arrow_schema()
    data = pa.Table.from_pandas(features, schema=schema, preserve_index=False)
    write_arrow("features.user_features", data, DS)
    write_arrow("eval.planted_personas", pa.Table.from_pandas(personas, preserve_index=False))
    yield tmp_path
    import mlflow

    if mlflow.active_run():
        mlflow.end_run()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_train_registers_gates_and_serves(platform):
    import mlflow

    from core.model_registry import champion_version, configure_mlflow, mlflow_client, model_version_by_alias
    from core.warehouse import read_pandas
    from ml.train import train

    first = train(DS, epochs=4, seed=42)

    # --- first model: registered as version 1 and, with no incumbent, champion -----------------------
    assert first.model_version == 1 and first.promoted and first.champion_version == 1
    client = mlflow_client()
    assert str(champion_version(client).version) == "1"
    run = client.get_run(first.run_id)
    for key in ("holdout_accuracy", "holdout_macro_f1", "holdout_macro_precision", "holdout_macro_recall",
                "cold_start_macro_f1", "teacher_persona_ari", "teacher_persona_nmi", "student_persona_ari",
                "student_persona_nmi", "teacher_silhouette", "pca_components", "gate_promoted"):
        assert key in run.data.metrics, key
    assert run.data.params["k"] == "6" and run.data.params["ds"] == DS
    assert run.data.params["method"] == "sequence_kmeans" and run.data.params["k_mode"] == "fixed"
    # The evaluation plots and tables are artifacts of the run.
    reports = {a.path for a in client.list_artifacts(first.run_id, "reports")}
    for name in ("confusion_matrix.png", "segment_profiles.png", "segment_sizes.png", "training_curves.png",
                 "k_selection.png", "feature_selection.csv", "feature_selection.png", "per_segment_report.csv"):
        assert f"reports/{name}" in reports, name
    assert list(first.per_segment.columns[:1]) == ["segment"] and len(first.per_segment) >= 6
    assert run.data.tags["gate.decision"] == "promoted"
    # Four planted behaviours are easy: the student must reproduce its teacher well above chance (1/6).
    assert first.metrics["holdout_accuracy"] > 0.5
    assert sum(first.segment_sizes.values()) == 400
    # Artifacts live under SEGMENTS_HOME, not in ./mlruns of the working directory.
    experiment = client.get_experiment(configure_mlflow())
    assert experiment.artifact_location.startswith(f"file://{platform}")

    # --- the champion serves through the generic pyfunc loader --------------------------------------
    model = mlflow.pyfunc.load_model("models:/user_segmenter@champion")
    features = read_pandas("features.user_features", DS)
    out = model.predict(features)
    assert list(out.columns) == ["user_id", "segment_id", "segment_name", "confidence", "probabilities"]
    assert len(out) == len(features) and out["user_id"].tolist() == features["user_id"].tolist()
    assert out["segment_id"].dtype == np.int32 and out["segment_id"].between(0, 5).all()
    assert ((out["confidence"] > 0) & (out["confidence"] <= 1)).all()
    assert all(len(p) == 6 and abs(sum(p) - 1) < 1e-9 for p in out["probabilities"])
    assert set(out["segment_name"]) <= set(first.segments.values())

    # --- second model: challenger, gate decision consistent with the logged scores -------------------
    second = train(DS, epochs=3, seed=7)
    assert second.model_version == 2
    assert str(model_version_by_alias("challenger", client).version) == "2"
    tags = client.get_run(second.run_id).data.tags
    metrics = client.get_run(second.run_id).data.metrics
    assert "gate_champion_macro_f1" in metrics and tags["gate.reason"]
    should_promote = metrics["gate_new_macro_f1"] >= metrics["gate_champion_macro_f1"]
    assert second.promoted == should_promote
    assert tags["gate.decision"] == ("promoted" if should_promote else "rejected")
    champion = str(champion_version(client).version)
    if should_promote:
        assert champion == "2" and str(model_version_by_alias("previous", client).version) == "1"
    else:
        assert champion == "1" and model_version_by_alias("previous", client) is None


@pytest.mark.integration
def test_train_refuses_a_tiny_partition(tmp_path, monkeypatch):
    import pyarrow as pa

    from core.tables import table
    from core.warehouse import write_arrow
    from ml.train import NotEnoughUsers, train

    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    monkeypatch.delenv("SEGMENTS_N_SEGMENTS", raising=False)
    features, _ = make_features(n_users=30)
    schema = table("features.user_features").arrow_schema()
    write_arrow("features.user_features", pa.Table.from_pandas(features, schema=schema), DS)
    # k=6 needs max(50, 10 * 6) = 60 users; the check comes before any MLflow run is created.
    with pytest.raises(NotEnoughUsers, match="has 30 users; training 6 segments needs at least 60"):
        train(DS, epochs=1)
    # More segments than users, and k by silhouette whose range tops out above the users.
    monkeypatch.setenv("SEGMENTS_N_SEGMENTS", "40")
    with pytest.raises(NotEnoughUsers, match="has 30 users: k=40 is larger than the number of users"):
        train(DS, epochs=1)
    monkeypatch.setenv("SEGMENTS_N_SEGMENTS", "auto")
    monkeypatch.setenv("SEGMENTS_K_RANGE", "2-4")
    with pytest.raises(NotEnoughUsers, match=r"up to 4 segments \(SEGMENTS_K_RANGE\) needs at least 50"):
        train(DS, epochs=1)
    assert not (tmp_path / "mlflow").exists()
