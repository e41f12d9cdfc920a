"""Published files honour the umask (a service running as another user reads them), a
killed build's staging folder is removed by the next, and terminal text carries no
control characters."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from mars_core.app.results_page import result_table_text
from mars_core.infra.errors import printable
from mars_core.infra.io import remove_stale_staging, staging_folder
from mars_core.search.funnel import SearchResult
from mars_core.search.types import Candidate, SearchRequest

WRITE_UNDER_UMASK_022 = """
import os, sys
from pathlib import Path
import pyarrow as pa
os.umask(0o022)
from mars_core.infra.io import atomic_write_parquet, atomic_write_text, staging_folder
out = Path(sys.argv[1])
atomic_write_text(out / "report.html", "<html></html>")
atomic_write_parquet(out / "catalogue.parquet", pa.table({"key": ["a"]}))
staging_folder(out, ".staging-")
if sys.argv[2] == "lucene":
    import numpy as np
    from mars_core.index.lucene import BUILD_COLUMNS, write_lucene_index
    from mars_core.index.vectors import VECTORS_FILE, write_aligned_vectors
    columns = {name: ["x", "y"] for name in BUILD_COLUMNS}
    columns |= {"key": ["a@x", "b@x"], "category": ["BED", "LAMP"],
                "search_text": ["blue bed", "reading lamp"]}
    vectors = np.eye(2, dtype=np.float32)
    write_lucene_index(
        pa.table(columns), out / "lucene" / "build-1",
        aligned=lambda keys, folder: write_aligned_vectors(
            [(keys, vectors)], keys, folder / VECTORS_FILE, 2),
    )
"""


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}


def _write_under_umask(folder: Path, what: str) -> dict[str, int]:
    script = textwrap.dedent(WRITE_UNDER_UMASK_022)
    subprocess.run([sys.executable, "-c", script, str(folder), what], check=True)
    return _modes(folder)


def test_atomic_writes_and_staging_folders_honour_the_umask(tmp_path):
    modes = _write_under_umask(tmp_path, "files")
    assert modes.pop("report.html") == 0o644 and modes.pop("catalogue.parquet") == 0o644
    assert list(modes.values()) == [0o755]  # the staging folder
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_a_published_lucene_build_is_readable_by_others(tmp_path):
    """...and the build removes what a killed build left in the same folder."""
    dead = tmp_path / "lucene" / f".staging-{_dead_pid()}-0badc0de"
    dead.mkdir(parents=True)
    modes = _write_under_umask(tmp_path, "lucene")
    assert not dead.exists()
    lucene = {name: mode for name, mode in modes.items() if name.startswith("lucene")}
    assert lucene["lucene/build-1"] == 0o755
    files = [mode for name, mode in lucene.items() if (tmp_path / name).is_file()]
    assert files and set(files) == {0o644}


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_dead_builds_staging_folder_goes_and_a_live_ones_stays(tmp_path):
    dead = tmp_path / f".staging-{_dead_pid()}-0badc0de"
    dead.mkdir()
    (dead / "half-written").write_text("x")
    live = staging_folder(tmp_path, ".staging-")
    other = tmp_path / ".staging-notes"  # not a staging folder's name: left alone
    other.mkdir()
    assert remove_stale_staging(tmp_path, ".staging-") == [dead]
    assert not dead.exists() and live.is_dir() and other.is_dir()
    assert str(os.getpid()) in live.name


def test_control_characters_never_reach_the_terminal():
    hostile = "Bed\x1b[2J\x1b]0;pwned\x07 frame\r\x9b31m"
    assert printable(hostile) == "Bed[2J]0;pwned frame31m"
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"
    product = {"name": hostile, "category": "BED"}
    result = SearchResult(
        request=SearchRequest(room=Image.new("RGB", (4, 4)), query="bed\x07"),
        results=[Candidate("k", product, scores={"bm25": 1.0}, rationale="fits\x1b[31m")],
        stages_run=["bm25"],
        timings={"bm25": 0.0},
    )
    table = result_table_text(result)
    assert not any(ch in table for ch in "\x1b\x07\r\x9b") and "Bed[2J" in table


def test_an_error_line_carries_no_control_characters(capsys):
    from mars_core.app.cli import fail
    from mars_core.infra.errors import UserInputError

    with pytest.raises(SystemExit):
        fail(UserInputError("no room photo at evil\x1b[2J.jpg\x07"))
    assert capsys.readouterr().err == "error: no room photo at evil[2J.jpg\n"


def test_whatever_a_command_prints_carries_no_control_characters(capsys):
    """Every command's output (the index flow's skipped keys and reasons, a mining summary's
    categories, ...) passes through one filter in `run_app`."""
    from mars_core.app.apps import APPS
    from mars_core.app.cli import run_app

    run_app(APPS["index"], [], lambda _call: print("skipped BED\x1b]0;pwned\x07: bad\r image"))
    assert capsys.readouterr().out == "skipped BED]0;pwned: bad image\n"
