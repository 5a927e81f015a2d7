"""app/cli.py: argument handling, error reporting and the daily chain of `segments run`."""

from __future__ import annotations

import os

import pytest

from app import cli


@pytest.fixture(autouse=True)
def _restore_tf_log_level(monkeypatch):
    """cli.main() sets TF_CPP_MIN_LOG_LEVEL if unset; setting it here first makes monkeypatch restore it."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))


def test_run_follows_the_daily_chain_in_one_spark_session(monkeypatch):
    session, started, calls = object(), [], []

    def start_spark():
        started.append(session)
        return session

    def recorder(command):
        def stage(args, spark=None):
            calls.append((command, getattr(args, "table", None), args.ds, spark))
        return stage

    # cmd_run builds its own parser, which picks up the stages patched here.
    monkeypatch.setattr(cli, "_spark", start_spark)
    for command in ("validate", "features", "score", "profiles", "publish"):
        monkeypatch.setattr(cli, f"cmd_{command}", recorder(command))
    assert cli.main(["run", "--ds", "2026-03-01"]) == 0
    assert [(command, table) for command, table, _, _ in calls] == [
        ("validate", "raw"), ("features", None), ("validate", "features.user_features"),
        ("score", None), ("validate", "segments.user_segments"), ("profiles", None), ("publish", None)]
    assert {(ds, spark) for _, _, ds, spark in calls} == {("2026-03-01", session)} and started == [session]


@pytest.mark.parametrize("argv", [["features", "--ds", "2026-02-30"], ["seed", "--users", "0"],
                                  ["validate", "--table", "raw.nope", "--ds", "2026-01-01"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_expected_failure_is_one_line_with_a_hint(platform_home, capsys):
    code = cli.main(["publish", "--ds", "2026-03-01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0].startswith("error: table segments.user_segments has no data for ds=2026-03-01")
    assert err[1].startswith("hint: ")
    assert not any("Traceback" in line for line in err)


@pytest.mark.spark
def test_scoring_without_a_champion_says_how_to_train_one(platform_home, spark, capsys):
    # The registry is checked before any data is read: an empty platform is enough.
    assert cli.main(["score", "--ds", "2026-03-01"]) == 1
    err = capsys.readouterr().err
    assert "error: the MLflow registry has no 'user_segmenter@champion' model" in err
    assert "segments train --ds 2026-03-01" in err
