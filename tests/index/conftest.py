"""Fixtures of the stage 1 / stage 2 tests: a catalogue, the tiny embedder, a built index.

`world` is the one place that says which catalogue the tests run on: today the small factory
catalogue, later the ingest flow's generated world (a catalogue parquet and its folder).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from catalogue_factory import write_catalogue

from mars_core.config import IndexConfig
from mars_core.embedder import Embedder
from mars_core.index.reindex import ReindexReport, reindex
from mars_core.index.store import IndexSnapshot

WORLD_PRODUCTS = 300


class World(NamedTuple):
    catalogue: Path  # catalogue.parquet in CATALOGUE_SCHEMA
    folder: Path  # where its images live


class BuiltIndex(NamedTuple):
    cfg: IndexConfig
    report: ReindexReport
    snapshot: IndexSnapshot


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("world")
    return World(write_catalogue(folder, WORLD_PRODUCTS), folder)


@pytest.fixture
def own_world(world: World, tmp_path: Path) -> World:
    """A copy of the catalogue for a test that changes it (images stay shared, read-only)."""
    folder = tmp_path / "world"
    folder.mkdir()
    return World(Path(shutil.copy(world.catalogue, folder)), folder)


@pytest.fixture(scope="session")
def embedder(cfg, model_cache: Path) -> Embedder:
    return Embedder.from_config(cfg.embedder, model_cache)


@pytest.fixture(scope="session")
def index_cfg(cfg) -> Callable[..., IndexConfig]:
    """`index_cfg(folder, **changes)`: the configured index group in `folder`, changed."""

    def make(folder: Path, **changes) -> IndexConfig:
        return dataclasses.replace(cfg.index, dir=str(folder), **changes)

    return make


@pytest.fixture(scope="session")
def built(world: World, index_cfg, embedder: Embedder, tmp_path_factory) -> BuiltIndex:
    """Both indexes of the world, built once for the read-only tests."""
    cfg = index_cfg(tmp_path_factory.mktemp("index"))
    report = reindex(world.catalogue, cfg, embedder)
    return BuiltIndex(cfg, report, IndexSnapshot.current(cfg.dir))
