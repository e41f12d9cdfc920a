"""The installed package carries its configs (conf/ ships as `mars_conf`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_every_module_and_config(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("mars-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml in ROOT.glob("conf/**/*.yaml"):
        assert f"mars_conf/{yaml.relative_to(ROOT / 'conf')}" in names
    for package in ("mars_core", "flows", "tasks"):
        for module in (ROOT / package).rglob("*.py"):
            assert str(module.relative_to(ROOT)) in names
