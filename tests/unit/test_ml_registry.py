"""The registry commands (segments model list|promote|rollback) on a real SQLite registry."""

from __future__ import annotations

import pytest

from ml.registry import NoSuchVersion, list_versions, promote, rollback


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
