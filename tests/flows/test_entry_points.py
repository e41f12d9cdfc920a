"""The commands as a person runs them, in subprocesses (the in-process cases are in
tests/app/test_cli.py): light answers import no model library, a missing input and a Prefect
server that will not start each end in one `error:` line with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tasks.prefect_server import START_TIMEOUT_KNOB

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "lancedb")
# Runs a command module as `python -m` does, then says which heavy libraries it imported.
PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('imported:', *[m for m in {heavy!r} if m in sys.modules], "
    "file=sys.stderr))\n"
    "sys.argv = [{module!r}, *{args!r}]\n"
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
)


def _run(args: list[str], home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"MARS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _one_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("module", "args", "status"),
    [
        ("mars_core.app.commands.search", ["--help"], 0),
        ("mars_core.app.commands.serve", ["--cfg", "job"], 0),
        ("flows.index", ["--help"], 0),
        ("flows.pipeline", ["funnel.k9=3"], 2),
    ],
)
def test_help_cfg_and_config_errors_import_no_model_library(module, args, status, tmp_path):
    """`--help`, `--cfg job` and a config mistake answer before torch, transformers or
    LanceDB could load (a flow module answers with its first statement)."""
    code = PROBE.format(heavy=HEAVY, module=module, args=args)
    run = _run(["-c", code], tmp_path, timeout=120)
    assert run.returncode == status, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "imported:", run.stderr


@pytest.mark.parametrize(
    ("room", "expected"),
    [
        ("rom.jpg", "does not exist or is not a file"),  # a misspelt photo path
        ("room.png", "no catalogue.parquet"),  # a photo, but nothing ingested yet
    ],
)
def test_a_search_s_mistake_is_one_line_before_any_model_library_loads(room, expected, tmp_path):
    """The photo and the catalogue are checked before the search imports torch, transformers
    or LanceDB: a typo costs a second, not the models' import."""
    Image.new("RGB", (16, 16)).save(tmp_path / "room.png")
    args = ["--room", str(tmp_path / room), "--query", "bed"]
    error = _one_error(_run(["-m", "mars_core.app.commands.search", *args], tmp_path, 120))
    assert expected in error
    code = PROBE.format(heavy=HEAVY, module="mars_core.app.commands.search", args=args)
    probe = _run(["-c", code], tmp_path, timeout=120)
    assert probe.returncode == 2 and probe.stderr.strip().splitlines()[-1] == "imported:"


@pytest.mark.slow
def test_a_flow_s_missing_input_is_one_line(tmp_path):
    error = _one_error(_run(["-m", "flows.mining"], tmp_path))
    assert "run `python -m flows.ingest` first" in error


@pytest.mark.slow
def test_a_prefect_server_that_does_not_start_in_time_is_one_line_naming_the_knob(tmp_path):
    run = _run(["-m", "flows.ingest", f"{START_TIMEOUT_KNOB}=0.05"], tmp_path)
    assert START_TIMEOUT_KNOB in _one_error(run)


# A flow whose task raises a user's mistake the command did not catch before the flow started.
MISTAKE_IN_A_TASK = """
from prefect import flow, task

from mars_core.app.apps import APPS
from mars_core.app.cli import run_app
from mars_core.app.compose import load_config
from mars_core.infra.errors import UserInputError
from tasks.flow_process import prepare_flow_process


@task
def read_it():
    raise UserInputError("no thing at /x: run `python -m flows.ingest` first")


@flow
def broken():
    read_it()


def command(call):
    prepare_flow_process(load_config(call.overrides), debug=call.debug)
    broken()


run_app(APPS["ingest"], None, command)
"""


@pytest.mark.slow
def test_a_user_error_inside_a_task_is_logged_without_its_traceback(tmp_path):
    script = tmp_path / "mistake.py"
    script.write_text(MISTAKE_IN_A_TASK)
    run = _run([str(script)], tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: no thing at /x: run `python -m flows.ingest` first"
    )
    assert "Traceback" in _run([str(script), "--debug"], tmp_path).stderr
