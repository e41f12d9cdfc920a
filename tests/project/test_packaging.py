"""The installed package carries its configs (conf/ ships as `mars_conf`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mars_core", "flows", "tasks")


@pytest.mark.slow
def test_wheel_ships_every_module_and_config(tmp_path):
    source = tmp_path / "src"  # setuptools builds in-tree: keep the checkout clean
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in (*PACKAGES, "conf"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("mars-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml in ROOT.glob("conf/**/*.yaml"):
        assert f"mars_conf/{yaml.relative_to(ROOT / 'conf')}" in names
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            assert str(module.relative_to(ROOT)) in names
