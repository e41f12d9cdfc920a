"""Fixtures of the teacher tests: the pairs of the session's generated world."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairs_factory import build_pairs

from mars_core.mining.schema import PAIRS_FILE


@pytest.fixture(scope="session")
def pairs_table(world) -> pa.Table:
    return build_pairs(world.out_dir)


@pytest.fixture
def pairs_file(pairs_table: pa.Table, tmp_path: Path) -> Path:
    """The pairs table in a fresh folder of its own (labels and shards land beside it)."""
    path = tmp_path / "pairs" / PAIRS_FILE
    path.parent.mkdir()
    pq.write_table(pairs_table, path)
    return path
