"""Each date's labels are reproducible: the version that first labelled a date is recorded
(segments.date_models) and a rerun uses it again, unless asked for the current champion.

On a private copy of the trained platform: label DS with v1, make a v2 champion, rerun DS (v1 again),
then rerun it with --model champion (v2; the first version stays recorded)."""

from __future__ import annotations

import pytest

from app import cli
from core import warehouse
from tests.integration.conftest import DS

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@pytest.fixture
def platform(platform_copy, monkeypatch):
    monkeypatch.setenv("SEGMENTS_TRAIN_EPOCHS", "2")
    return platform_copy


def _labels() -> tuple[set[str], dict]:
    versions = set(warehouse.read_pandas("segments.user_segments", DS)["model_version"])
    record = warehouse.read_arrow("segments.date_models", DS).to_pylist()
    assert len(record) == 1
    return versions, {k: record[0][k] for k in ("first_version", "version")}


def test_a_rerun_keeps_the_first_model_unless_asked_for_the_champion(platform, capsys):
    assert cli.main(["-q", "score", "--ds", DS]) == 0
    first, record = _labels()
    assert len(first) == 1 and record == {"first_version": min(first), "version": min(first)}
    v1 = record["version"]

    assert cli.main(["-q", "train", "--ds", DS, "--seed", "5"]) == 0
    assert cli.main(["model", "promote", "--version", str(int(v1) + 1), "--reason", "test"]) == 0
    v2 = str(int(v1) + 1)
    capsys.readouterr()

    assert cli.main(["-q", "score", "--ds", DS]) == 0  # default: recorded
    assert f"v{v1} (recorded)" in capsys.readouterr().out
    assert _labels() == ({v1}, {"first_version": v1, "version": v1})

    assert cli.main(["-q", "score", "--ds", DS, "--model", "champion"]) == 0
    assert f"v{v2} (champion)" in capsys.readouterr().out
    assert _labels() == ({v2}, {"first_version": v1, "version": v2})

    # A date never labelled is labelled by the champion.
    other = "2026-03-30"
    assert cli.main(["-q", "features", "--ds", other]) == 0
    assert cli.main(["-q", "score", "--ds", other]) == 0
    assert set(warehouse.read_pandas("segments.user_segments", other)["model_version"]) == {v2}
