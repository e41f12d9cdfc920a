"""Every entry point as a person runs it: `python -m flows.<name>` in a fresh project folder.

The subprocesses run concurrently once per module (each costs seconds of imports), then each
case checks its exit status and output: `--help` and `--cfg job` exit 0, a mistake is one
`error:` line with exit status 2 and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from flows.apps import APPS
from mars_core.catalogue.quarantine import Quarantine
from mars_core.catalogue.rooms import scan_rooms
from mars_core.compose import load_config
from mars_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = sorted(APPS)
NO_ABO = ["data=abo", "data.raw_dir=/no/such/abo"]
# (entry point, arguments) -> what the missing input's error must name.
MISSING_INPUTS = {
    "ingest": (NO_ABO, "no ABO data at /no/such/abo"),
    "pipeline": (NO_ABO, "no ABO data at /no/such/abo"),
    "index": ([], "run `python -m flows.ingest` first"),
    "mining": ([], "run `python -m flows.ingest` first"),
    "label": ([], "pairs"),
    "train": ([], "run `python -m flows.label`"),
    "evaluate": ([], "`python -m flows.index`"),
    "inference": (["missing.jsonl"], "missing.jsonl: no such requests file"),
    "search": (["--room", str(ROOT / "README.md"), "--query", "bed"], "is not an image"),
    "serve": ([], "run `python -m flows.ingest` first"),
}
POSITIONAL = {"inference": ["requests.jsonl"], "search": ["--room", "x.jpg", "--query", "bed"]}


def _command(name: str) -> list[str]:
    return [sys.executable, "-m", f"flows.{name}", *POSITIONAL.get(name, [])]


def _cases() -> dict[tuple[str, str], list[str]]:
    cases = {}
    for name in ENTRY_POINTS:
        cases[(name, "help")] = [sys.executable, "-m", f"flows.{name}", "--help"]
        cases[(name, "cfg")] = [*_command(name), "--cfg", "job", "funnel.k3=4"]
        cases[(name, "bad_key")] = [*_command(name), "funnel.k9=3"]
        cases[(name, "bad_option")] = [*_command(name), "data=nope"]
        arguments, _ = MISSING_INPUTS[name]
        cases[(name, "missing")] = [sys.executable, "-m", f"flows.{name}", *arguments]
    return cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    """Every case, run concurrently in an empty project home (nothing ingested yet)."""
    env = os.environ | {"MARS_HOME": str(tmp_path_factory.mktemp("fresh-home"))}

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    cases = _cases()
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(run, cases.values())
        return dict(zip(cases, done, strict=True))


def _one_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_lists_flags_groups_and_an_example(runs, name):
    run = runs[(name, "help")]
    assert run.returncode == 0, run.stderr
    for text in ("--cfg job", "--debug", "-v, --verbose", "data ", "synthetic (default)"):
        assert text in run.stdout
    assert "example:" in run.stdout and APPS[name].example in run.stdout


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_cfg_job_prints_the_composed_config(runs, name):
    run = runs[(name, "cfg")]
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(run.stdout)["funnel"]["k3"] == 4


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_misspelt_key_names_the_closest_keys(runs, name):
    assert "did you mean funnel.k3" in _one_error(runs[(name, "bad_key")])


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_an_unknown_group_option_lists_the_available_ones(runs, name):
    error = _one_error(runs[(name, "bad_option")])
    assert "Available options in 'data': abo, synthetic" in error


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_missing_input_is_one_line_naming_it(runs, name):
    _, expected = MISSING_INPUTS[name]
    assert expected in _one_error(runs[(name, "missing")])


def test_debug_keeps_the_traceback(tmp_path):
    env = os.environ | {"MARS_HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "flows.index", "--debug", "funnel.k9=3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_room_classes_cover_outdoor_settings_and_extend_from_the_command_line(tmp_path):
    cfg = load_config(["data.extra_room_classes=[Garage:garage]"])
    classes = cfg.data.room_classes()
    assert {"Pool", "Poolside", "Patio", "Garden", "Balcony", "Terrace", "Deck"} <= set(classes)
    assert classes["Garage"] == "garage" and classes["Bedroom"] == "bedroom"
    with pytest.raises(ConfigError, match="Folder:room_type"):
        load_config(["data.extra_room_classes=[Garage]"])
    (tmp_path / "Attic").mkdir()
    (tmp_path / "Attic" / "a.jpg").write_bytes(b"not read")
    quarantine = Quarantine()
    scan_rooms(tmp_path, classes, quarantine, max_pixels=10**6)
    assert "data.extra_room_classes=[Attic:<room type>]" in quarantine.rows[0]["detail"]
