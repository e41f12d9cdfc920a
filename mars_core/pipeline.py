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
from mars_core.errors import UserInputError
from mars_core.evaluation.promotion import PromotionDecision
from mars_core.fingerprint import fingerprint
from mars_core.index.store import MANIFEST_FILE
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE
from mars_core.runtime import setup_runtime
from mars_core.search_service import SearchReport
from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE

INDEX_MANIFEST = "<index>"


@dataclass(frozen=True)
class StepInputs:
    """Artifacts (names in `data.out_dir`, or INDEX_MANIFEST) and config groups a step reads,
    and the artifacts it writes (a cached step whose outputs are gone runs again)."""

    files: tuple[str, ...]
    groups: tuple[str, ...]
    outputs: tuple[str, ...] = ()


STEPS: dict[str, StepInputs] = {
    "ingest": StepInputs(
        files=(), groups=("data",), outputs=(CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE)
    ),
    "index": StepInputs(
        files=(CATALOGUE_FILE,), groups=("index", "embedder"), outputs=(INDEX_MANIFEST,)
    ),
    "mining": StepInputs(
        files=(CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE, INDEX_MANIFEST),
        groups=("mining", "embedder", "index"),
        outputs=(PAIRS_FILE, HELDOUT_PAIRS_FILE),
    ),
    "label": StepInputs(
        files=(PAIRS_FILE, HELDOUT_PAIRS_FILE, CATALOGUE_FILE, ROOMS_FILE),
        groups=("teacher",),
        outputs=(LABELS_FILE, HELDOUT_LABELS_FILE),
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


def outputs_missing(cfg: MarsConfig, step: str) -> bool:
    """Whether an artifact `step` writes is gone (deleted since it ran): then run it again."""
    return any(not _artifact(cfg, name).is_file() for name in STEPS[step].outputs)


def _artifact(cfg: MarsConfig, name: str) -> Path:
    if name == INDEX_MANIFEST:
        return Path(cfg.index.dir) / MANIFEST_FILE
    return Path(cfg.data.out_dir) / name


@dataclass
class PipelineReport:
    """What a person looks at after a run: the evaluation table, the promotion, the page."""

    candidate_version: int | None
    champion_version: int | None
    table: str  # the evaluation's markdown table
    judged_by: str  # the evaluation's title: who judged the held-out requests
    decision: PromotionDecision | None
    eval_files: dict[str, str]
    searches: SearchReport

    def summary(self) -> str:
        """The lines the command ends with; the page to open comes last."""
        promotion = self.decision.reason if self.decision else "promotion off (eval.promote)"
        champion = f"v{self.champion_version}" if self.champion_version else "none"
        mlflow_ui = f"mlflow ui --backend-store-uri {setup_runtime().mlflow_uri}"
        return "\n".join(
            [
                "",
                f"MARS pipeline done. {self.judged_by}:",
                "",
                self.table,
                f"student: candidate v{self.candidate_version}, champion {champion}: {promotion}",
                f"evaluation table and plots: {Path(self.eval_files['table']).parent}",
                f"  page: {self.eval_files['page']}",
                f"compare runs in MLflow:     .venv/bin/{mlflow_ui}",
                f"sample searches ({self.searches.searched} searched, "
                f"{self.searches.failed} failed), open in a browser:",
                f"  {self.searches.page}",
            ]
        )


def check_pipeline_inputs(cfg: MarsConfig) -> None:
    """A catalogue of one's own must be on disk before anything starts (the generated world
    is made by the first step)."""
    if cfg.data.source == "abo" and cfg.data.acquire == "local":
        raw = Path(cfg.data.raw_dir)
        if not raw.is_dir():
            raise UserInputError(
                f"no ABO data at {raw}: unpack abo-listings.tar and abo-images-small.tar there, "
                "set data.raw_dir=<folder>, or set data.acquire=download"
            )
