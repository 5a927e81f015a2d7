"""core.model_registry: a model's input columns against the feature table's."""

from __future__ import annotations

from core.model_registry import schema_diff


def test_schema_diff_names_missing_and_extra_columns():
    # The model needs a, b (and may take user_id); the table has a, c and the partition column ds.
    diff = schema_diff(["a", "b"], ["user_id"], ["user_id", "a", "c", "ds"])
    assert diff.missing == ("b",) and diff.extra == ("c",) and not diff.compatible
    assert diff.describe() == "1 missing from the table: b; 1 extra in the table (ignored by the model): c"
    # Extra columns alone do not stop a model (new features are added to the table before a retrain).
    assert schema_diff(["a"], [], ["a", "new_feature"]).compatible
