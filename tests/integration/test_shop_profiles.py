"""The shop profiles of docs/data-contract.md end to end on real Spark, GX, Keras/MLflow and DuckDB: a
purchase log alone (raw.orders) and a clickstream alone (raw.events + raw.users). The full profile is
tests/integration/test_pipeline.py. Also: customers inactive for 90+ days still get a label."""

from __future__ import annotations

import contextlib
import datetime as dt

import pyarrow as pa
import pytest

from app import cli
from core import feature_catalog, tables, warehouse
from jobs.publish import query
from tests.integration.conftest import DS, SEED_END

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _platform(tmp_path_factory, raw_tables: str) -> dict[str, str]:
    """Seed, featurise, train and run DS for a shop with these raw tables; returns its environment."""
    from synthetic.generator import generate

    home = tmp_path_factory.mktemp(raw_tables.replace(",", "_"))
    env = {"SEGMENTS_HOME": str(home), "SEGMENTS_RAW_TABLES": raw_tables, "SEGMENTS_TRAIN_EPOCHS": "2",
           "SEGMENTS_ENSEMBLE_SEEDS": "1"}
    with _environment(env):
        generate(users=400, days=40, end_date=SEED_END, seed=11, progress=False)
        assert cli.main(["-q", "features", "--ds", DS]) == 0
        assert cli.main(["-q", "train", "--ds", DS]) == 0
        assert cli.main(["-q", "run", "--ds", DS]) == 0
    return env


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    with pytest.MonkeyPatch.context() as mp:
        for var in ("SEGMENTS_BI_URL", "MLFLOW_TRACKING_URI", "SEGMENTS_WAREHOUSE", "AIRFLOW_HOME",
                    "SEGMENTS_GX_DIR", "SEGMENTS_MLFLOW_ARTIFACTS"):
            mp.delenv(var, raising=False)
        for var, value in env.items():
            mp.setenv(var, value)
        yield


@pytest.fixture(scope="module")
def orders_shop(tmp_path_factory, spark):
    return _platform(tmp_path_factory, "raw.orders")


@pytest.fixture(scope="module")
def events_shop(tmp_path_factory, spark):
    return _platform(tmp_path_factory, "raw.events,raw.users")


@pytest.fixture
def orders_only(orders_shop):
    with _environment(orders_shop):  # each test gets its shop's settings; module fixtures share one process
        yield


@pytest.fixture
def events_only(events_shop):
    with _environment(events_shop):
        yield


def _trained_on() -> dict[str, str]:
    import mlflow

    from core.model_registry import champion_version, configure_mlflow

    configure_mlflow()
    return mlflow.get_run(champion_version().run_id).data.params


def _labelled_names() -> set[str]:
    return set(warehouse.read_pandas("segments.user_segments", DS, ["segment_name"]).segment_name)


def test_a_purchase_log_gets_segments_without_clickstream_features(orders_only):
    assert warehouse.partitions("raw.events") == [] and warehouse.partitions("raw.users") == []
    features = warehouse.read_pandas("features.user_features", DS)
    absent = [f.name for f in feature_catalog.absent(("raw.orders",))]
    # Absent families are null for everyone (not zeros); the order features are there.
    assert "views_30d" in absent and features[absent].isna().all().all()
    assert features["orders_90d"].notna().all() and (features["orders_90d"] > 0).any()
    params = _trained_on()
    assert params["raw_tables"] == "raw.orders"
    assert not {"rates", "diversity", "static"} & set(params["feature_families"].split(","))
    # No name that needs views; every active customer has a label, and it reached the BI database.
    names = _labelled_names()
    assert names and not any(n.startswith("window_shopper") for n in names)
    assert set(features.user_id) <= set(warehouse.read_pandas("segments.user_segments", DS).user_id)
    assert query("SELECT count(*) FROM segments.user_segments")[1][0][0] >= len(features)


def test_a_clickstream_without_orders_gets_segments(events_only):
    assert warehouse.partitions("raw.orders") == []
    features = warehouse.read_pandas("features.user_features", DS)
    assert features["revenue_90d"].isna().all() and features["views_30d"].notna().all()
    assert "money" not in _trained_on()["feature_families"].split(",")
    assert _labelled_names()


def test_customers_gone_quiet_are_labelled_lapsed_with_their_days(orders_only, capsys):
    # One order arrives 100 days after DS; everyone else was last active 100+ days before that date.
    later = (dt.date.fromisoformat(DS) + dt.timedelta(days=100)).isoformat()
    order = {"order_id": "o-late", "user_id": "late-buyer", "amount": 30.0, "item_count": 1,
             "order_ts": dt.datetime.fromisoformat(f"{later}T10:00:00+00:00"), "discount_amount": 0.0,
             "status": "completed"}
    schema = tables.table("raw.orders").arrow_schema()
    warehouse.write_arrow("raw.orders", pa.Table.from_pylist([order], schema=schema), later)
    assert cli.main(["-q", "features", "--ds", later]) == 0
    assert cli.main(["-q", "score", "--ds", later]) == 0
    assert cli.main(["-q", "profiles", "--ds", later]) == 0
    assert cli.main(["-q", "publish", "--ds", later]) == 0
    labels = warehouse.read_pandas("segments.user_segments", later)
    ever_seen = set(warehouse.read_pandas("features.user_lifetime", later, ["user_id"]).user_id)
    assert set(labels.user_id) == ever_seen  # every customer ever seen, one label each
    quiet = labels[labels.user_id != "late-buyer"]
    assert set(quiet.segment_name) == {"lapsed"} and set(quiet.segment_id) == {-1}
    assert (quiet.days_since_last_active >= 100).all()
    assert labels.set_index("user_id").at["late-buyer", "lifecycle"] == "active"
    assert f"from the lifetime state: {len(quiet)} lapsed" in capsys.readouterr().out
    # The BI tables say how long ago each was last active.
    _, rows = query("SELECT segment_name, count(*), min(days_since_last_active) FROM segments.user_segments "
                    "WHERE lifecycle = 'lapsed' GROUP BY 1")
    assert rows == [("lapsed", len(quiet), int(quiet.days_since_last_active.min()))]
