"""jobs/quality.py: the GX store keeps a table's suite, validation definition and checkpoint between
validations and saves them again only when they change (real GX on a pandas frame: no Spark)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from jobs import quality

pytest.importorskip("great_expectations")

TABLE, DS = "segments.user_segments", "2026-03-30"
ONLY_A = {"type": "expect_column_values_to_be_in_set",
          "kwargs": {"column": "segment_name", "value_set": ["a"]}}  # fails on 2 of the 3 labels below


@pytest.fixture
def suites(platform_home, tmp_path, monkeypatch):
    """A private copy of expectations/ (and a GX store of its own in platform_home): a test may edit it."""
    directory = tmp_path / "expectations"
    shutil.copytree(quality.SUITES_DIR, directory)
    monkeypatch.setattr(quality, "SUITES_DIR", directory)
    return directory


@pytest.fixture
def saves(monkeypatch):
    """What validations save to the GX store: one entry per add_or_update (GX nests them)."""
    from great_expectations.core.factory.checkpoint_factory import CheckpointFactory
    from great_expectations.core.factory.suite_factory import SuiteFactory
    from great_expectations.core.factory.validation_definition_factory import ValidationDefinitionFactory

    calls: list[str] = []
    for kind, factory in (("suite", SuiteFactory), ("definition", ValidationDefinitionFactory),
                          ("checkpoint", CheckpointFactory)):
        def spy(self, *args, _save=factory.add_or_update, _kind=kind, **kwargs):
            calls.append(_kind)
            return _save(self, *args, **kwargs)

        monkeypatch.setattr(factory, "add_or_update", spy)
    return calls


def _labels() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2, 3], "segment_id": [0, 1, 1], "segment_name": ["a", "b", "b"],
                         "confidence": [0.9, 0.5, 0.7]})


def _validate() -> quality.ValidationOutcome:
    return quality.validate_dataframe(_labels(), TABLE, DS, "pandas")


def _stored_suite(platform_home) -> dict:
    return json.loads((platform_home / "gx/gx/expectations/segments/user_segments.json").read_text())


def test_the_fingerprint_is_the_applicable_specs():
    spec = quality.load_suite_spec("features.user_features")
    every = quality.applicable(spec, ("raw.events", "raw.orders", "raw.users"))
    reordered = json.loads(json.dumps(every), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert quality.spec_fingerprint(reordered) == quality.spec_fingerprint(every)  # key order does not count
    # A shop without clickstream has a smaller suite: its store must not reuse the other one.
    orders_only = quality.applicable(spec, ("raw.orders",))
    assert quality.spec_fingerprint(orders_only) != quality.spec_fingerprint(every)


def test_a_second_validation_reuses_the_stored_suite_definition_and_checkpoint(suites, platform_home, saves):
    first = _validate()
    assert {"suite", "definition", "checkpoint"} <= set(saves)  # a new store: everything is saved
    stored = _stored_suite(platform_home)
    assert stored["meta"][quality.FINGERPRINT] == quality.spec_fingerprint(quality.load_suite_spec(TABLE))

    saves.clear()
    second = _validate()
    assert saves == []
    assert second == first and second.success and second.evaluated == 5
    assert _stored_suite(platform_home) == stored


def test_a_changed_suite_is_saved_and_used_by_the_next_validation(suites, platform_home, saves):
    assert _validate().success
    path = suites / f"{TABLE}.json"
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "expectations": [*spec["expectations"], ONLY_A]}))

    saves.clear()
    added = _validate()
    assert "suite" in saves and "checkpoint" not in saves  # the checkpoint names the suite: it stays
    assert added.evaluated == 6
    assert [(f.expectation, f.column, f.unexpected_count) for f in added.failures] == [
        ("expect_column_values_to_be_in_set", "segment_name", 2)]

    path.write_text(json.dumps(spec))  # and back: the removed expectation no longer runs
    removed = _validate()
    assert removed.success and removed.evaluated == 5
    assert len(_stored_suite(platform_home)["expectations"]) == 5


def test_a_store_missing_the_validation_definition_is_repaired(suites, platform_home, saves):
    assert _validate().success
    definition = platform_home / "gx/gx/validation_definitions" / f"{TABLE}.pandas.json"
    definition.unlink()  # the checkpoint that names it cannot be read now

    saves.clear()
    assert _validate().success
    assert "definition" in saves and definition.exists()


def test_a_validation_draws_no_progress_bars(suites, platform_home, capfd):
    # GX draws a bar per validation on stderr; in job and task logs the gate's own line says it all.
    assert _validate().success
    assert "Calculating Metrics" not in capfd.readouterr().err
