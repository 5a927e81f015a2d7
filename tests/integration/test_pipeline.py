"""The daily pipeline on real components: seeded warehouse -> Spark features -> GX gates -> Keras/MLflow
training -> Spark scoring -> profiles -> DuckDB publish, plus the bad-partition and rerun contracts."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from app import cli
from core import tables, warehouse
from jobs import quality
from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]

BAD_DS = "2026-03-30"  # a partition we corrupt (and restore)


@pytest.fixture(scope="module")
def platform(trained_platform):
    return trained_platform


def _count(name: str, ds: str) -> int:
    return warehouse.read_arrow(name, ds, ["user_id"] if "user_id" in tables.table(name).column_names
                              else None).num_rows


def test_features_have_one_row_per_user_active_in_the_window(platform):
    # Independent count with Arrow: distinct non-null user_ids with an event in the 40 seeded days <= DS.
    active = set()
    for ds in warehouse.partitions("raw.events"):
        if ds <= DS:
            ids = warehouse.read_arrow("raw.events", ds, ["user_id"]).column("user_id")
            active.update(pc.unique(ids.drop_null()).to_pylist())
    feats = warehouse.read_arrow("features.user_features", DS, ["user_id"]).column("user_id").to_pylist()
    assert len(feats) == len(set(feats)) == len(active)


def test_good_partitions_pass_their_gates(platform, spark):
    for table in ("raw.events", "features.user_features"):
        for engine in quality.ENGINES:  # the same suite runs on both engines
            assert quality.validate(table, DS, engine=engine, spark=spark).success
    results = warehouse.read_pandas("quality.validation_results", DS).set_index("table_name")
    assert results.loc[["raw.events", "features.user_features"], "success"].all()  # (other tables' rows kept)
    assert (platform / "gx").is_dir()


def test_training_registered_a_champion(platform):
    from core.model_registry import champion_version, configure_mlflow

    configure_mlflow()
    champion = champion_version()
    assert champion is not None and str(champion.version) == "1"


def test_daily_run_labels_every_user_once_and_publishes(platform, capsys):
    assert cli.main(["-q", "run", "--ds", DS]) == 0
    labels = warehouse.read_pandas("segments.user_segments", DS)
    feature_users = set(warehouse.read_pandas("features.user_features", DS, ["user_id"]).user_id)
    assert set(labels.user_id) == feature_users and labels.user_id.is_unique
    assert labels.confidence.between(0, 1).all() and (labels.model_version == "1").all()
    # The BI side got this date's labels (publish_log counts what was loaded in the transaction).
    assert cli.main(["sql", f"SELECT users FROM segments.publish_log WHERE ds = '{DS}'"]) == 0
    assert capsys.readouterr().out.split()[-1] == str(len(feature_users))


def test_rerunning_a_date_leaves_identical_row_counts(platform):
    from jobs.publish import query

    def counts():
        tables = ["features.user_daily", "features.user_features", "segments.user_segments",
                  "segments.segment_profiles"]
        bi = {t: query(f"SELECT count(*) FROM segments.{t}")[1][0][0]
              for t in ("user_segments", "segment_profiles", "publish_log")}
        return {t: _count(t, DS) for t in tables} | {f"bi.{t}": n for t, n in bi.items()}

    before = counts()
    assert cli.main(["-q", "run", "--ds", DS]) == 0
    assert counts() == before


def test_bad_partition_stops_the_run_and_keeps_what_was_published(platform, spark, capsys):
    from jobs.publish import query

    published_before = query("SELECT ds, count(*) FROM segments.user_segments GROUP BY ds")[1]
    events = warehouse.read_arrow("raw.events", BAD_DS)
    # Plant 2% negative prices and 2% unknown event types: far beyond the 0.5% the gate lets cleaning
    # quarantine (the generator already plants a few of each; they count too).
    prices = events.column("price").to_pylist()
    types = events.column("event_type").to_pylist()
    n = events.num_rows // 50
    prices[:n] = [-1.0] * n
    types[n:2 * n] = ["teleport"] * n
    bad_prices = sum(p < 0 for p in prices)
    bad_types = sum(t not in ("view", "search", "add_to_cart", "remove_from_cart", "purchase") for t in types)
    bad = events.set_column(events.schema.get_field_index("price"), "price", [prices])
    bad = bad.set_column(bad.schema.get_field_index("event_type"), "event_type", [types])
    warehouse.write_arrow("raw.events", bad, BAD_DS)
    try:
        for engine in quality.ENGINES:
            with pytest.raises(quality.ValidationFailed) as exc:
                quality.validate("raw.events", BAD_DS, engine=engine, spark=spark)
            message = str(exc.value)
            assert f"raw.events ds={BAD_DS}: 2 of 8 checks failed" in message  # the schema check, 7 expectations
            assert f"expect_column_values_to_be_between(column=price): {bad_prices} unexpected" in message
            assert f"expect_column_values_to_be_in_set(column=event_type): {bad_types} unexpected" in message
        failed = warehouse.read_pandas("quality.validation_results", BAD_DS)
        assert failed.set_index("table_name").loc["raw.events", "failed"] == 2

        capsys.readouterr()
        assert cli.main(["-q", "run", "--ds", BAD_DS]) == 3  # the gate's exit status
        assert "error: raw.events ds=" in capsys.readouterr().err
        assert BAD_DS not in warehouse.partitions("features.user_features")  # nothing downstream was written
        assert BAD_DS not in warehouse.partitions("segments.user_segments")
        assert query("SELECT ds, count(*) FROM segments.user_segments GROUP BY ds")[1] == published_before
    finally:  # restore for the tests that follow, also when an assertion above failed
        warehouse.write_arrow("raw.events", events, BAD_DS)


def test_missing_and_empty_partitions_fail_their_gate_with_different_messages(platform):
    with pytest.raises(quality.ValidationFailed, match="ds=2026-05-01: no partition: the data has not arrived"):
        quality.validate("raw.orders", "2026-05-01", engine="pandas")
    # A day the shop was closed: ingest writes an empty partition, which is there but holds nothing.
    warehouse.write_arrow("raw.orders", tables.table("raw.orders").arrow_schema().empty_table(), "2026-05-02")
    try:
        with pytest.raises(quality.ValidationFailed, match="ds=2026-05-02: the partition exists but holds no rows"):
            quality.validate("raw.orders", "2026-05-02", engine="pandas")
    finally:
        warehouse.delete_partition("raw.orders", "2026-05-02")


def test_validations_at_once_do_not_invalidate_each_other(platform, tmp_path):
    # Two raw gates of a backfill at once, in their own processes, on a new GX store: before the store's
    # lock one of them failed with CheckpointRelatedResourcesFreshnessError ("ExpectationSuite 'raw.events'
    # has changed since it has last been saved").
    import os
    import subprocess
    import sys

    env = {**os.environ, "SEGMENTS_HOME": str(platform), "SEGMENTS_GX_DIR": str(tmp_path / "gx")}
    command = [sys.executable, "-m", "app.cli", "-q", "validate", "--table", "raw.events", "--ds"]
    runs = [subprocess.Popen([*command, ds], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for ds in ("2026-03-20", "2026-03-21")]
    outputs = [p.communicate(timeout=900)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], "\n".join(o[-2000:] for o in outputs)

