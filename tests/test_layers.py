"""Imports run one way: `lint-imports` (the `layers` contracts in pyproject.toml) passes on
the tree and fails once a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("mars_core", "tasks", "flows")


def copy_tree(target: Path) -> Path:
    """The packages and their contracts, where an edit cannot touch the checkout."""
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )


def add_import(module: Path, statement: str) -> None:
    module.write_text(f"{statement}  # noqa\n{module.read_text()}")


def test_the_tree_keeps_its_layers(tmp_path):
    out = lint_imports(copy_tree(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_upward_import_breaks_the_layers(tmp_path):
    tree = copy_tree(tmp_path)
    # The index (a lower layer) reaching for the search report (a higher one).
    add_import(tree / "mars_core/index/lance.py", "import mars_core.report")
    out = lint_imports(tree)
    assert out.returncode != 0
    assert "mars_core layers BROKEN" in out.stdout
    assert "mars_core.index.lance -> mars_core.report" in out.stdout


def test_mars_core_importing_a_flow_breaks_the_layers(tmp_path):
    tree = copy_tree(tmp_path)
    add_import(tree / "mars_core/io.py", "import flows.ingest")
    out = lint_imports(tree)
    assert out.returncode != 0
    assert "flows > tasks > mars_core BROKEN" in out.stdout
