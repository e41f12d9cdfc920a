"""Imports run one way: `lint-imports` (the `layers` contracts in pyproject.toml) passes on
the tree and fails once a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize(
    ("module", "statement", "broken", "named"),
    [
        # The index (a lower layer) reaching for the search report (a higher one).
        ("mars_core/index/lance.py", "import mars_core.app.results_page",
         "mars_core: app > domain > config > infra",
         "mars_core.index.lance -> mars_core.app.results_page"),
        # The library reaching for a flow.
        ("mars_core/infra/io.py", "import flows.ingest", "flows > tasks > mars_core",
         "mars_core.infra.io -> flows.ingest"),
    ],
)  # fmt: skip
def test_an_upward_import_breaks_the_layers(tmp_path, module, statement, broken, named):
    tree = copy_tree(tmp_path)
    add_import(tree / module, statement)
    out = lint_imports(tree)
    assert out.returncode != 0
    assert f"{broken} BROKEN" in out.stdout
    assert named in out.stdout
