"""The layer contract (pyproject.toml [tool.importlinter]) holds, and an upward import breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "core", "jobs", "ml", "synthetic")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: a copy must be analysed afresh; PYTHONPATH: the copy's packages, not the installed ones.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def _copy_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_tree_keeps_its_layers():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    root = _copy_tree(tmp_path)
    tables = root / "core" / "tables.py"
    # Hidden in a function, as the old cycle was: still an import of the layer above.
    tables.write_text(tables.read_text() + "\n\ndef _sneaky():\n    from app import cli\n    return cli\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "core.tables -> app.cli" in result.stdout


def test_the_model_runtime_may_not_reach_the_platform(tmp_path):
    root = _copy_tree(tmp_path)
    segmenter = root / "ml" / "runtime" / "segmenter.py"
    segmenter.write_text(segmenter.read_text() + "\nfrom core import settings  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "ml.runtime.segmenter -> core.settings" in result.stdout
