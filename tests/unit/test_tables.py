"""core/tables.py: the table declarations and the Spark / Arrow schemas derived from them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from core import tables


def test_every_table_declares_a_key_that_is_a_column():
    for table in tables.TABLES.values():
        assert set(table.key) <= set(table.column_names), table.name
        assert len(set(table.column_names)) == len(table.column_names), f"duplicate column in {table.name}"


def test_feature_table_stores_each_kind_of_feature_with_its_type():
    # Written out, not derived: numbers as double, categories as string, sequences as array<double>.
    table = tables.table("features.user_features")
    expected = {"recency_days": "double", "revenue_90d": "double", "age": "double", "gender": "string",
                "top_category_90d": "string", "seq_views": "array<double>",
                "seq_dwell_minutes": "array<double>"}
    types = dict(table.columns)
    assert {name: types.get(name) for name in expected} == expected
    assert table.spark_ddl(only=["age", "gender", "seq_views"]) == (
        "`age` DOUBLE, `gender` STRING, `seq_views` ARRAY<DOUBLE>")
    schema = table.arrow_schema()
    assert [schema.field(name).type for name in ("age", "gender", "seq_views")] == [
        pa.float64(), pa.string(), pa.list_(pa.float64())]


def test_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="raw.events"):
        tables.table("raw.evnts")
