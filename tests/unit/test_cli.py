import pytest

from app import cli


def test_every_subcommand_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.description, name


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
