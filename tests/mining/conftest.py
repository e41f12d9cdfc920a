"""Fixtures of the mining tests: the indexed world's tables in a folder of their own (mining
writes beside them; the session's world stays read-only) and one real flow run over them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    ROOMS_FILE,
    SPLITS_FILE,
)
from mars_core.mining.mine import MiningReport
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE

TABLES = (CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE, GROUND_TRUTH_FILE)


class Mined(NamedTuple):
    folder: Path  # data.out_dir of the run
    overrides: list[str]  # Hydra overrides that point a flow at `folder`
    report: MiningReport
    pairs: pa.Table
    heldout: pa.Table | None  # None: mining.write_heldout=false


def world_copy(indexed, folder: Path) -> list[str]:
    """The world's tables copied into `folder` (images stay where they are); the overrides
    under which a flow reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        shutil.copy(indexed.out_dir / name, folder / name)
    return [*indexed.overrides, f"data.out_dir={folder}"]


@pytest.fixture(scope="session")
def mine_into(indexed, prefect_harness, tmp_path_factory):
    """`mine_into(name, *overrides)`: a real mining flow run on a fresh copy of the world."""
    from flows.mining import mining

    def run(name: str, *extra: str) -> Mined:
        folder = tmp_path_factory.mktemp(name)
        overrides = [*world_copy(indexed, folder), *extra]
        report = mining(overrides)
        pairs = pq.read_table(folder / PAIRS_FILE)
        held = folder / HELDOUT_PAIRS_FILE
        heldout = pq.read_table(held) if held.is_file() else None
        return Mined(folder, overrides, report, pairs, heldout)

    return run


@pytest.fixture(scope="session")
def mined(mine_into) -> Mined:
    """The default (tiny) mining of the world, run once through the flow."""
    return mine_into("mined")
