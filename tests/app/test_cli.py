"""Every command's command line, in process: `--help`, `--cfg job|all` without the command's
other arguments, a mistake as one `error:` line with exit status 2, and each missing input
named with the command that makes it (before Prefect or a model starts).

A handful of the same behaviours run as a person runs them, in subprocesses:
tests/flows/test_entry_points.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from mars_core.app.apps import APPS
from mars_core.app.cli import run_app
from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.catalogue.quarantine import Quarantine
from mars_core.catalogue.rooms import scan_rooms
from mars_core.catalogue.schema import SPLITS_FILE
from mars_core.index.store import MANIFEST_FILE
from mars_core.infra.errors import ConfigError, UserInputError
from mars_core.mining.schema import HELDOUT_PAIRS_FILE

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(APPS)
# The module whose `main` each command runs.
MODULES = {name: f"flows.{name}" for name in COMMANDS} | {
    "search": "mars_core.app.commands.search",
    "serve": "mars_core.app.commands.serve",
}
NO_ABO = ["data=abo", "data.raw_dir=/no/such/abo"]
# command -> (arguments, what the missing input's error must name), in an empty home.
MISSING_INPUTS = {
    "ingest": (NO_ABO, "no ABO data at /no/such/abo"),
    "pipeline": (NO_ABO, "no ABO data at /no/such/abo"),
    "index": ([], "run `python -m flows.ingest` first"),
    "mining": ([], "run `python -m flows.ingest` first"),
    "label": ([], "run `python -m flows.mining` first"),
    "train": ([], "run `python -m flows.label` first"),
    "evaluate": ([], "run `python -m flows.ingest` first"),
    "inference": (["missing.jsonl"], "missing.jsonl: no such requests file"),
    "search": (["--room", str(ROOT / "README.md"), "--query", "bed"], "is not an image"),
    "serve": ([], "run `python -m flows.ingest` first"),
}


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """An empty project home: nothing ingested, indexed or trained yet."""
    monkeypatch.setenv("MARS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _never(_call: object) -> None:
    raise AssertionError("the command ran; it should have answered or failed first")


def _run(name: str, argv: list[str]) -> int:
    """`run_app` of command `name` with a command that must not run; the exit status."""
    with pytest.raises(SystemExit) as exited:
        run_app(APPS[name], argv, _never)
        raise SystemExit(0)
    return exited.value.code


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The one `error:` line a mistake ends in (exit status 2, nothing else on stderr)."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_flags_groups_and_an_example(name, capsys):
    assert _run(name, ["--help"]) == 0
    out = capsys.readouterr().out
    for text in (
        "--cfg job",
        "--cfg all",
        "--debug",
        "-v, --verbose",
        "data ",
        "synthetic (default)",
    ):
        assert text in out
    assert "example:" in out and APPS[name].example in out


@pytest.mark.parametrize("name", COMMANDS)
def test_cfg_job_prints_the_config_without_the_other_arguments(name, capsys):
    assert _run(name, ["--cfg", "job", "funnel.k3=4"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["funnel"]["k3"] == 4


@pytest.mark.parametrize("name", COMMANDS)
def test_cfg_all_puts_hydra_settings_first(name, capsys):
    assert _run(name, ["--cfg=all", "funnel.k3=4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "run" in printed["hydra"] and printed["funnel"]["k3"] == 4


def test_cfg_job_leaves_out_a_command_s_own_arguments(capsys):
    """`--cfg` needs no --room/--query or requests file, and ignores them when given."""
    assert _run("inference", ["requests.jsonl", "--cfg", "job", "funnel.k3=4"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["funnel"]["k3"] == 4
    assert _run("search", ["--cfg", "job", "--room", "a.jpg"]) == 0


@pytest.mark.parametrize("name", COMMANDS)
def test_a_misspelt_key_names_the_closest_keys(name, capsys):
    code = _run(name, ["--cfg", "job", "funnel.k9=3"])
    assert "did you mean funnel.k3" in _one_error(capsys, code)


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_group_option_lists_the_available_ones(name, capsys):
    code = _run(name, ["--cfg", "job", "data=nope"])
    assert "Available options in 'data': abo, shared_types, synthetic" in _one_error(capsys, code)


def test_a_missing_required_argument_is_one_line(capsys):
    code = _run("search", ["--query", "bed"])
    assert "--room" in _one_error(capsys, code)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_missing_input_is_one_line_naming_the_command_that_makes_it(name, fresh_home, capsys):
    """Each command's own `main`, in an empty home: its inputs are checked before any Prefect
    run or model starts, and the mistake is one line."""
    arguments, expected = MISSING_INPUTS[name]
    main = importlib.import_module(MODULES[name]).main
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert expected in _one_error(capsys, exited.value.code)


def test_evaluate_without_judgements_names_the_label_command(fresh_home):
    """No ground truth and no held-out labels: the message names both ways to get them."""
    cfg = load_config([])
    Path(cfg.data.out_dir).mkdir(parents=True)
    (Path(cfg.data.out_dir) / SPLITS_FILE).touch()
    Path(cfg.index.dir).mkdir(parents=True)
    (Path(cfg.index.dir) / MANIFEST_FILE).touch()
    heldout = Path(cfg.data.out_dir) / HELDOUT_PAIRS_FILE
    with pytest.raises(UserInputError, match="evaluate needs one of them") as raised:
        require_inputs(cfg, "evaluate")
    assert f"`python -m flows.label --pairs {heldout}`" in str(raised.value)


def test_debug_keeps_the_traceback():
    with pytest.raises(ConfigError):
        run_app(APPS["index"], ["--debug", "funnel.k9=3"], _never)


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
