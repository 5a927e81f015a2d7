"""Promotion gate rules, stability, schema diff, and the registry commands on a real SQLite registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.registry import ModelScore, NoSuchVersion, day_to_day_stability, decide, list_versions, promote, rollback
from core.model_registry import schema_diff


# --- pure rules ------------------------------------------------------------------------------------
def test_stability_is_the_share_of_shared_users_keeping_their_segment():
    # u1 and u2 are on both days; u1 keeps segment 0, u2 moves 1 -> 2; u3 / u0 are on one day only.
    share, users = day_to_day_stability(
        pd.Series(["u1", "u2", "u3"]), np.array([0, 2, 1]), pd.Series(["u0", "u1", "u2"]), np.array([5, 0, 1])
    )
    assert (share, users) == (0.5, 2)
    assert day_to_day_stability(pd.Series(["a"]), np.array([0]), pd.Series(["b"]), np.array([0])) == (None, 0)


def test_gate_needs_f1_and_stability_not_worse():
    champion = ModelScore("1", macro_f1=0.90, stability=0.95, stability_users=100)
    better_f1_less_stable = ModelScore("2", macro_f1=0.93, stability=0.94, stability_users=100)
    promoted, reasons = decide(better_f1_less_stable, champion, "2024-03-30")
    assert not promoted and "0.9400 < champion 0.9500" in reasons[1]
    equal = ModelScore("2", macro_f1=0.90, stability=0.95, stability_users=100)
    assert decide(equal, champion, "2024-03-30")[0]  # "not worse" includes a tie
    worse_f1 = ModelScore("2", macro_f1=0.89, stability=0.99, stability_users=100)
    assert not decide(worse_f1, champion, "2024-03-30")[0]


def test_gate_without_an_earlier_partition_compares_f1_only_and_says_so():
    champion = ModelScore("1", 0.90, None, 0)
    promoted, reasons = decide(ModelScore("2", 0.91, None, 0), champion, None)
    assert promoted
    assert reasons[1] == "stability not compared: no features.user_features partition before ds"


def test_schema_diff_names_missing_and_extra_columns():
    # The model needs a, b (and may take user_id); the table has a, c and the partition column ds.
    diff = schema_diff(["a", "b"], ["user_id"], ["user_id", "a", "c", "ds"])
    assert diff.missing == ("b",) and diff.extra == ("c",) and not diff.compatible
    assert diff.describe() == "1 missing from the table: b; 1 extra in the table (ignored by the model): c"
    # Extra columns alone do not stop a model (new features are added to the table before a retrain).
    assert schema_diff(["a"], [], ["a", "new_feature"]).compatible


# --- registry commands -----------------------------------------------------------------------------
@pytest.fixture
def registry(platform_home):
    """A SQLite registry with versions 1..3 of user_segmenter (no artifacts: aliases only matter here)."""
    from core.model_registry import mlflow_client

    client = mlflow_client()
    client.create_registered_model("user_segmenter")
    for ds in ("2024-03-01", "2024-03-08", "2024-03-15"):
        mv = client.create_model_version("user_segmenter", source=str(platform_home / "none"))
        client.set_model_version_tag("user_segmenter", mv.version, "ds", ds)
    client.set_registered_model_alias("user_segmenter", "champion", "2")
    client.set_registered_model_alias("user_segmenter", "challenger", "3")
    return client


def _aliases(client) -> dict[str, str]:
    return {row.version: ",".join(row.aliases) for row in list_versions(client, "user_segmenter")}


def test_promote_rollback_and_list(registry):
    assert _aliases(registry) == {"3": "challenger", "2": "champion", "1": ""}
    assert [r.ds for r in list_versions(registry, "user_segmenter")] == ["2024-03-15", "2024-03-08", "2024-03-01"]

    # promote (default: the challenger): 3 becomes champion, 2 previous; the reason is on the version.
    assert promote(registry, "user_segmenter", None, "canary looked fine") == ("3", "2")
    assert _aliases(registry) == {"3": "challenger,champion", "2": "previous", "1": ""}
    assert registry.get_model_version("user_segmenter", "3").tags["promotion.reason"] == "manual: canary looked fine"

    # rollback: champion := previous in one step; 'previous' is consumed, the demoted version tagged.
    assert rollback(registry, "user_segmenter", "bad segments") == ("2", "3")
    assert _aliases(registry) == {"3": "challenger", "2": "champion", "1": ""}
    assert "bad segments" in registry.get_model_version("user_segmenter", "3").tags["rolled_back"]
    with pytest.raises(NoSuchVersion, match="no 'previous' version to roll back to"):
        rollback(registry, "user_segmenter", "again")


def test_promote_refuses_unknown_and_current_versions(registry):
    with pytest.raises(NoSuchVersion, match="has no version 9"):
        promote(registry, "user_segmenter", "9", "x")
    with pytest.raises(NoSuchVersion, match="v2 is already champion"):
        promote(registry, "user_segmenter", "2", "x")
