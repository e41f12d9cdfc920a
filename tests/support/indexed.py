"""Fixtures of the index, stage 1 / stage 2 and index-flow tests: a catalogue, the tiny
embedder, a built index (a plugin of tests/conftest.py, so every test folder sees them).

`catalogue_world` is the one place that says which catalogue these tests run on: the ingest
flow's generated world (the session-wide `world` fixture of tests/conftest.py), seen as a
catalogue parquet and its folder.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from mars_core.catalogue.schema import CATALOGUE_FILE
from mars_core.config import IndexConfig
from mars_core.index.reindex import ReindexReport, reindex
from mars_core.index.store import IndexSnapshot
from mars_core.vision.embedder import Embedder

WORLD_PRODUCTS = 300


class World(NamedTuple):
    catalogue: Path  # catalogue.parquet in CATALOGUE_SCHEMA
    folder: Path  # where its images live


class BuiltIndex(NamedTuple):
    cfg: IndexConfig
    report: ReindexReport
    snapshot: IndexSnapshot


@pytest.fixture(scope="session")
def catalogue_world(world) -> World:
    """The generated world's catalogue parquet and folder."""
    return World(world.out_dir / CATALOGUE_FILE, world.out_dir)


@pytest.fixture
def own_world(catalogue_world: World, tmp_path: Path) -> World:
    """A copy of the catalogue for a test that changes it (images stay shared, read-only)."""
    folder = tmp_path / "world"
    folder.mkdir()
    return World(Path(shutil.copy(catalogue_world.catalogue, folder)), folder)


@pytest.fixture(scope="session")
def embedder(cfg, model_cache: Path) -> Embedder:
    return Embedder.from_config(
        cfg.embedder, model_cache, max_image_pixels=cfg.data.max_image_pixels
    )


@pytest.fixture(scope="session")
def other_embedder(embedder: Embedder) -> Embedder:
    """The same network under another model id: to an index, a different embedder."""
    return Embedder(
        embedder.loaded, name="other", model_id="another-model", batch_size=4,
        max_image_pixels=10**6,
    )  # fmt: skip


@pytest.fixture(scope="session")
def index_cfg(cfg) -> Callable[..., IndexConfig]:
    """`index_cfg(folder, **changes)`: the configured index group in `folder`, changed."""

    def make(folder: Path, **changes) -> IndexConfig:
        return dataclasses.replace(cfg.index, dir=str(folder), **changes)

    return make


def build_both(catalogue_world: World, cfg: IndexConfig, embedder: Embedder) -> BuiltIndex:
    report = reindex(catalogue_world.catalogue, cfg, embedder)
    return BuiltIndex(cfg, report, IndexSnapshot.current(cfg.dir))


@pytest.fixture(scope="session")
def built(catalogue_world: World, cfg, embedder: Embedder) -> BuiltIndex:
    """Both indexes of the world, built once where the session's config looks (`index.dir`),
    for the read-only tests and every flow run with the session's overrides."""
    return build_both(catalogue_world, cfg.index, embedder)
