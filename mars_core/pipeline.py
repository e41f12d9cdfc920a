"""The training pipeline's steps: what each reads, so a step re-runs only when that changed.

ingest -> index -> mining -> label -> train -> evaluate -> search. Each step's cache key is
the fingerprint of the artifacts it reads, the config groups it reads and an upstream token
(the model version it evaluates, the champion it searches with); see `step_fingerprint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    ROOMS_FILE,
    SPLITS_FILE,
)
from mars_core.config import MarsConfig
from mars_core.fingerprint import fingerprint
from mars_core.index.store import MANIFEST_FILE
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE
from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE

INDEX_MANIFEST = "<index>"


@dataclass(frozen=True)
class StepInputs:
    """Artifacts (names in `data.out_dir`, or INDEX_MANIFEST) and config groups a step reads."""

    files: tuple[str, ...]
    groups: tuple[str, ...]


STEPS: dict[str, StepInputs] = {
    "ingest": StepInputs(files=(), groups=("data",)),
    "index": StepInputs(files=(CATALOGUE_FILE,), groups=("index", "embedder")),
    "mining": StepInputs(
        files=(CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE, INDEX_MANIFEST),
        groups=("mining", "embedder", "index"),
    ),
    "label": StepInputs(
        files=(PAIRS_FILE, HELDOUT_PAIRS_FILE, CATALOGUE_FILE, ROOMS_FILE), groups=("teacher",)
    ),
    "train": StepInputs(
        files=(LABELS_FILE, CATALOGUE_FILE, ROOMS_FILE), groups=("train", "student")
    ),
    "evaluate": StepInputs(
        files=(GROUND_TRUTH_FILE, HELDOUT_LABELS_FILE, SPLITS_FILE, INDEX_MANIFEST),
        groups=("eval", "funnel", "student", "embedder"),
    ),
    "search": StepInputs(
        files=(INDEX_MANIFEST, ROOMS_FILE), groups=("funnel", "student", "embedder", "demo")
    ),
}


def step_fingerprint(cfg: MarsConfig, step: str, upstream: str = "") -> str:
    """The cache key of `step` under `cfg`: its input artifacts, config groups and upstream."""
    inputs = STEPS[step]
    files = [_artifact(cfg, name) for name in inputs.files]
    groups = {name: getattr(cfg, name) for name in inputs.groups}
    groups |= {"step": step, "upstream": upstream, "seed": cfg.seed}
    trees = [Path(cfg.data.raw_dir)] if step == "ingest" and cfg.data.source == "abo" else []
    return fingerprint(files=files, trees=trees, groups=groups)


def _artifact(cfg: MarsConfig, name: str) -> Path:
    if name == INDEX_MANIFEST:
        return Path(cfg.index.dir) / MANIFEST_FILE
    return Path(cfg.data.out_dir) / name
