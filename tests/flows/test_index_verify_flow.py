"""`python -m flows.index --verify` and `--allow-removals`: one line for a user, exit 2."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image
from support.catalogue_factory import read_rows, remove_products

from mars_core.index.lucene import PRODUCTS_FILE
from mars_core.index.store import LUCENE_DIR, MANIFEST_FILE


@pytest.fixture
def flow_args(built, own_world, session_overrides, tmp_path):
    """Overrides of a flow run over a copy of the built index and of the catalogue."""
    shutil.copytree(built.cfg.dir, tmp_path / "index")
    return [
        *session_overrides,
        f"data.out_dir={own_world.folder}",
        f"index.dir={tmp_path / 'index'}",
    ]


def run_main(args: list[str]) -> int:
    from flows.index import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code


@pytest.mark.slow
def test_verify_says_ok_then_names_a_broken_part(flow_args, tmp_path, prefect_harness, capsys):
    from flows.index import main

    main(["--verify", *flow_args])
    assert "index ok:" in capsys.readouterr().out

    (tmp_path / "index" / MANIFEST_FILE).write_text("{")
    assert run_main(["--verify", *flow_args]) == 2
    captured = capsys.readouterr()
    assert "broken manifest:" in captured.out
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("error: index ") and "repair it with `python -m flows.index`" in error


@pytest.mark.slow
def test_mass_removal_is_refused_then_allowed(flow_args, own_world, prefect_harness, capsys):
    from flows.index import main

    rows = read_rows(own_world.catalogue)
    remove_products(own_world.catalogue, [row["key"] for row in rows[:43]])
    assert run_main(flow_args) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: this re-index would remove 43 of")
    assert "--allow-removals" in error

    main(["--allow-removals", *flow_args])
    assert "removed 43" in capsys.readouterr().out


@pytest.mark.slow
def test_search_on_a_damaged_index_is_one_line_then_answers_after_the_repair(
    flow_args, tmp_path, prefect_harness, capsys
):
    from flows.index import main as index_main
    from mars_core.app.commands.search import main as search_main

    room = tmp_path / "room.png"
    Image.new("RGB", (32, 32), (120, 130, 140)).save(room)
    search = ["--room", str(room), "--query", "bed", *flow_args, "funnel.stages=[bm25,siglip]"]
    build = next((tmp_path / "index" / LUCENE_DIR).iterdir())
    (build / PRODUCTS_FILE).unlink()  # every build: the last good one is gone too

    with pytest.raises(SystemExit) as exit_:
        search_main(search)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: index ") and "is damaged: lucene" in error
    assert "`python -m flows.index`" in error

    index_main(flow_args)
    assert "repaired lucene:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        search_main(search)
    assert exit_.value.code == 0
    assert "results:" in capsys.readouterr().out
