import pyarrow as pa
import pytest

from segments import catalog


def test_every_table_declares_a_key_that_is_a_column():
    for table in catalog.TABLES.values():
        assert set(table.key) <= set(table.column_names), table.name
        assert len(set(table.column_names)) == len(table.column_names), f"duplicate column in {table.name}"


def test_feature_contract_is_in_the_feature_table():
    cols = dict(catalog.table("features.user_features").columns)
    for name in catalog.NUMERIC_FEATURES:
        assert cols[name] == "double"
    for name in catalog.SEQUENCE_CHANNELS:
        assert cols[name] == "array<double>"


def test_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="raw.events"):
        catalog.table("raw.evnts")


def test_paths_follow_the_hive_layout(platform_home):
    assert catalog.partition_path("raw.events", "2026-03-01") == str(
        platform_home.resolve() / "warehouse" / "raw" / "events" / "ds=2026-03-01")


def _personas(n: int) -> pa.Table:
    return pa.table({"user_id": [f"u{i}" for i in range(n)], "persona": ["occasional"] * n})


def test_arrow_write_replaces_the_partition_and_reads_back(platform_home):
    schema = catalog.table("quality.validation_results").arrow_schema()
    row = {"table_name": "raw.events", "suite": "raw.events", "success": True, "expectations": 7,
           "failed": 0, "rows": 10, "summary": "ok"}
    catalog.write_arrow("quality.validation_results", pa.Table.from_pylist([row, row], schema=schema), "2026-03-01")
    catalog.write_arrow("quality.validation_results", pa.Table.from_pylist([row], schema=schema), "2026-03-01")
    back = catalog.read_arrow("quality.validation_results", "2026-03-01", ["table_name", "ds"])
    assert back.num_rows == 1  # replaced, not appended
    assert back.column("ds").to_pylist() == ["2026-03-01"]
    assert catalog.partitions("quality.validation_results") == ["2026-03-01"]
    leftovers = [p.name for p in (platform_home / "warehouse" / "quality" / "validation_results").iterdir()]
    assert leftovers == ["ds=2026-03-01"]  # no staging or trash folders left behind


def test_unpartitioned_tables_need_no_ds_and_partitioned_ones_do(platform_home):
    catalog.write_arrow("eval.planted_personas", _personas(3))
    assert catalog.read_pandas("eval.planted_personas").shape == (3, 2)
    with pytest.raises(ValueError, match="pass ds"):
        catalog.read_arrow("raw.events")


def test_missing_partition_is_a_clear_platform_error(platform_home):
    with pytest.raises(catalog.TableNotFound, match=r"raw.events has no data for ds=2026-03-01"):
        catalog.read_arrow("raw.events", "2026-03-01")
