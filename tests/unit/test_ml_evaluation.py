"""Hold-out split, label matching and the promotion gate logic (fake registry client, no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from ml import registry
from ml.evaluation import apply_mapping, classification_metrics, hungarian_mapping, is_holdout
from ml.model import balanced_sample_weights


def test_holdout_is_deterministic_and_about_one_in_five():
    ids = [f"u{i}" for i in range(5000)]
    first, again = is_holdout(ids), is_holdout(list(reversed(ids)))[::-1]
    np.testing.assert_array_equal(first, again)  # depends on the id only, not on row order
    assert 0.17 < first.mean() < 0.23


def test_hungarian_recovers_a_permutation():
    target = np.array([0, 0, 1, 1, 2, 2, 2])
    source = np.array([5, 5, 3, 3, 9, 9, 3])  # same groups, other ids, one user moved
    mapping = hungarian_mapping(source, target)
    assert mapping == {5: 0, 3: 1, 9: 2}
    mapped = apply_mapping(source, mapping)
    assert classification_metrics(target, mapped, 3)["accuracy"] == pytest.approx(6 / 7)


def test_hungarian_unmatched_source_ids_become_minus_one():
    # 3 source clusters onto 2 target ids: the weakest source cluster stays unmatched.
    mapping = hungarian_mapping(np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1]))
    assert mapping == {0: 0, 1: 1, 2: -1}


def test_macro_metrics_count_absent_segments_as_zero():
    # Segment 2 never occurs nor is predicted: macro over k=3 divides by 3, not 2.
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), k=3)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == pytest.approx(2 / 3)


def test_balanced_weights():
    # 3 of class 0, 1 of class 1, class 2 absent: n / (2 present classes * count).
    np.testing.assert_allclose(balanced_sample_weights(np.array([0, 0, 0, 1]), 3), [4 / 6] * 3 + [2.0])


class FakeClient:
    """Just the alias calls of MlflowClient that the gate uses."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = dict(aliases)

    def get_model_version_by_alias(self, name, alias):
        if alias not in self.aliases:
            raise MlflowException(f"alias {alias} not found")
        return type("MV", (), {"version": self.aliases[alias]})()

    def set_registered_model_alias(self, name, alias, version):
        self.aliases[alias] = str(version)


def gate(client, new_f1, monkeypatch, champion_f1=None, error=None):
    def fake_score(uri, features, labels, k):
        if error:
            raise error
        return champion_f1

    monkeypatch.setattr(registry, "score_model_on", fake_score)
    return registry.promote_if_better(client, "m", 3, new_f1, pd.DataFrame(), np.array([]), 6)


def test_first_model_becomes_champion(monkeypatch):
    client = FakeClient({})
    decision = gate(client, 0.5, monkeypatch)
    assert decision.promoted and client.aliases == {"champion": "3"}


def test_better_or_equal_model_is_promoted_and_old_kept_as_previous(monkeypatch):
    client = FakeClient({"champion": "2"})
    decision = gate(client, 0.8, monkeypatch, champion_f1=0.8)  # ties promote: fresher model, same quality
    assert decision.promoted and client.aliases == {"champion": "3", "previous": "2"}
    assert decision.champion_macro_f1 == 0.8 and "promoted" in decision.reason


def test_worse_model_is_rejected(monkeypatch):
    client = FakeClient({"champion": "2"})
    decision = gate(client, 0.7, monkeypatch, champion_f1=0.8)
    assert not decision.promoted and client.aliases == {"champion": "2"} and decision.champion == "2"
    assert "kept champion" in decision.reason


def test_unscorable_champion_does_not_block(monkeypatch):
    client = FakeClient({"champion": "2"})
    decision = gate(client, 0.7, monkeypatch, error=ValueError("lacks feature-contract columns: x"))
    assert decision.promoted and client.aliases["champion"] == "3"
    assert "could not be scored" in decision.reason
