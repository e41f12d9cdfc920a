"""Shared fixtures for the SFT tests: a small labelled set over the session's world.

Labels here are made up from room type and category (`support.labels`); they are written to
a private catalogue folder (copies of the session world's tables), never into the shared
world, so other tests never see them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.labels import make_labels
from support.sft import build_examples

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.data import SFTData


@pytest.fixture(scope="session")
def sft_dir(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private catalogue folder (rooms + catalogue of the session world) with labels."""
    out = tmp_path_factory.mktemp("sft-catalogue")
    for name in (ROOMS_FILE, CATALOGUE_FILE):
        shutil.copy(world.out_dir / name, out / name)
    make_labels(out, rooms=8, per_room=4, failed=2)
    return out


@pytest.fixture(scope="session")
def sft_data(sft_dir: Path) -> SFTData:
    """`sft_dir`'s labels as SFT examples, as mined (no balancing)."""
    return build_examples(sft_dir / LABELS_FILE, sft_dir)
