"""Session-wide set-up and the expensive shared fixtures (tiny models, composed config,
the generated world)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mars_core.infra.runtime import setup_runtime

if TYPE_CHECKING:
    from mars_core.config import DataConfig

# The index fixtures (catalogue_world, embedder, built, ...) serve tests/index, tests/search
# and the index flow's test alike.
pytest_plugins = ["support.indexed"]

# The test session's MLflow store, Prefect home and artifacts live in a throw-away home,
# never in the developer's checkout, one home per pytest worker (`make test` runs several):
# a store named by the environment (a developer's, or the parent pytest process's, which the
# workers inherit) is not shared, or two workers would migrate one MLflow database at once.
os.environ["MARS_HOME"] = tempfile.mkdtemp(prefix="mars-tests-")
for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_HOME"):
    os.environ.pop(inherited, None)
setup_runtime()
# `make test` runs one pytest worker per core: each worker, and each flow it starts, computes
# on one thread (torch's default is one per core, which only makes the workers contend).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests where CUDA is missing (everything else always runs), and hand the
    files with `slow` tests out first: `make test`'s workers take whole files in this order,
    so the long ones start at once and the short ones fill in at the end."""
    import torch

    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh tiny-model cache for the session: tests build the models themselves."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def session_overrides(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Hydra overrides that keep every artifact of the session under pytest's tmp dir, on a
    world of 6 rooms per type (42 photos: the main job's 24 per type only make tests slower)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    return [
        f"paths.models={model_cache}",
        f"paths.artifacts={artifacts}",
        "data.world.rooms_per_type=6",
    ]


@pytest.fixture(scope="session")
def cfg(session_overrides: list[str]):
    """The default (tiny) config, composed once."""
    from mars_core.app.compose import load_config

    return load_config(session_overrides)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for tests that run real flows; it gets as long to start as a
    flow command does (a busy machine can take longer than Prefect's 30 s)."""
    from prefect.testing.utilities import prefect_test_harness

    from mars_core.config import PipelineConfig

    with prefect_test_harness(server_startup_timeout=PipelineConfig().prefect_start_timeout_s):
        yield


@dataclass(frozen=True)
class World:
    """The default generated world, generated and ingested once per session. Read-only."""

    raw_dir: Path  # ABO layout + rooms/ + truth/ (what the generator wrote)
    out_dir: Path  # catalogue, rooms, ground_truth, quarantine and splits parquet files
    data: DataConfig  # the data config that made it (cfg.data)
    overrides: list[str]  # Hydra overrides under which flows find it (= session_overrides)


@pytest.fixture(scope="session")
def world(cfg, session_overrides: list[str]) -> World:
    """The default synthetic world at the session's `data.raw_dir` / `data.out_dir`, so any
    flow run with `session_overrides` reads this catalogue."""
    from mars_core.catalogue.ingest import ingest
    from mars_core.catalogue.splits import write_splits
    from mars_core.world.generate import generate_world

    generate_world(cfg.data)
    ingest(cfg.data)
    write_splits(Path(cfg.data.out_dir), cfg.data.test_fraction, cfg.data.seed)
    return World(Path(cfg.data.raw_dir), Path(cfg.data.out_dir), cfg.data, session_overrides)


@pytest.fixture(scope="session")
def indexed(world, built) -> World:
    """The world with its catalogue indexed where the session's config looks (`index.dir`)."""
    return world


@pytest.fixture(scope="session")
def labelled(indexed, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The indexed world in a private catalogue folder with made-up teacher labels
    (`support.labels`), everything the train flow reads: a student trains, registers and is
    measured on validation and on held-out rooms. Flows find it with `labelled.overrides`."""
    import shutil

    from support.labels import make_labels

    from mars_core.catalogue.schema import (
        CATALOGUE_FILE,
        GROUND_TRUTH_FILE,
        ROOMS_FILE,
        SPLITS_FILE,
    )

    out = tmp_path_factory.mktemp("labelled")
    for name in (CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE, GROUND_TRUTH_FILE):
        shutil.copy(indexed.out_dir / name, out / name)
    make_labels(out, rooms=8, per_room=4)
    return World(indexed.raw_dir, out, indexed.data, [*indexed.overrides, f"data.out_dir={out}"])
