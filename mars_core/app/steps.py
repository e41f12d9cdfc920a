"""The training pipeline's steps: what each reads and writes, so a step re-runs only when its
inputs changed, and a step run alone names the command that makes a missing input.

ingest -> index -> mining -> label -> train -> evaluate -> search. Each step's cache key is
the fingerprint of the artifacts it reads, the config groups it reads and an upstream token
(the model version it evaluates, the champion it searches with); see `step_fingerprint`.
Every command checks its step's inputs with `require_inputs` before Prefect or a model starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    ROOMS_FILE,
    SPLITS_FILE,
)
from mars_core.config import MarsConfig
from mars_core.index.store import MANIFEST_FILE, IndexSnapshot
from mars_core.infra.errors import UserInputError
from mars_core.infra.fingerprint import fingerprint
from mars_core.infra.registry import CANDIDATE
from mars_core.infra.runtime import setup_runtime
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE
from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE

if TYPE_CHECKING:  # the run's summary names them; checking a command's inputs loads none
    from mars_core.app.batch_search import SearchReport
    from mars_core.app.sweep import SweepReport
    from mars_core.evaluation.promotion import PromotionDecision
    from mars_core.training.trainer import TrainResult

INDEX_MANIFEST = "<index>"
# Sections every step reads (the global seed feeds the world, mining and training alike).
SHARED_SECTIONS = ("seed", "paths", "experiment")
STOPPED_BY_TIME = "stopped by train.time_budget_s: this model depends on the machine's load"


@dataclass(frozen=True)
class StepInputs:
    """Artifacts (names in `data.out_dir`, or INDEX_MANIFEST) and config groups a step reads,
    and the artifacts it writes (a cached step whose outputs are gone runs again).

    Every file must be there before the step starts, except those in `optional` (read when
    there) and `one_of` (at least one of them). `also_writes`: artifacts the step writes only
    when the data has them (ground truth), named as their source but never awaited.
    """

    files: tuple[str, ...]
    groups: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    also_writes: tuple[str, ...] = ()


STEPS: dict[str, StepInputs] = {
    "ingest": StepInputs(
        files=(),
        groups=("data",),
        outputs=(CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE),
        also_writes=(GROUND_TRUTH_FILE,),
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
        # the flow labels one pairs file (`--pairs`), checked where it is read
        optional=(PAIRS_FILE, HELDOUT_PAIRS_FILE),
    ),
    # trains, then measures the student on validation (teacher) and held-out rooms
    "train": StepInputs(
        files=(
            LABELS_FILE,
            CATALOGUE_FILE,
            ROOMS_FILE,
            SPLITS_FILE,
            INDEX_MANIFEST,
            GROUND_TRUTH_FILE,
            HELDOUT_LABELS_FILE,
        ),
        groups=("train", "student", "teacher", "eval", "funnel", "embedder"),
        one_of=(GROUND_TRUTH_FILE, HELDOUT_LABELS_FILE),
    ),
    "evaluate": StepInputs(
        files=(GROUND_TRUTH_FILE, HELDOUT_LABELS_FILE, SPLITS_FILE, INDEX_MANIFEST),
        groups=("eval", "funnel", "student", "embedder"),
        one_of=(GROUND_TRUTH_FILE, HELDOUT_LABELS_FILE),
    ),
    "search": StepInputs(
        files=(CATALOGUE_FILE, INDEX_MANIFEST, ROOMS_FILE),
        groups=("funnel", "student", "embedder", "demo"),
        # the sample searches' rooms; a search of one's own photo runs without
        optional=(ROOMS_FILE,),
    ),
}
# The arguments of the command that writes an artifact, beyond `python -m flows.<step>`.
WRITER_ARGS = {HELDOUT_LABELS_FILE: f"--pairs {{out_dir}}/{HELDOUT_PAIRS_FILE}"}


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


@dataclass(frozen=True)
class TrainStep:
    """What the pipeline's train step hands on: the candidate's version, and the sweep's
    report when the step swept."""

    version: int | None
    sweep: SweepReport | None = None


def check_pipeline_sweep(keys: list[str]) -> None:
    """A pipeline sweeps its train step only: every job shares the steps before it, so a
    swept key those steps read would give each job another world. Names the key and step."""
    before = list(STEPS)[: list(STEPS).index("train")]
    for key in keys:
        section = key.lstrip("+~").split(".")[0].split("/")[0]
        readers = [step for step in before if section in STEPS[step].groups]
        if readers or section in SHARED_SECTIONS:
            reader = readers[0] if readers else "every step"
            raise UserInputError(
                f"cannot sweep {key} in the pipeline: {reader} reads it, and a pipeline sweep "
                "shares every step before train; sweep train.* or student.* there, or run "
                "the steps once per value"
            )


@dataclass
class StudentReport:
    """One trained student: its training, its registry version and run, and what it measured
    there (`val.*` on validation, judged by the teacher; `test.*` on held-out rooms)."""

    training: TrainResult
    sizes: dict[str, int]
    run_id: str
    version: int
    model_uri: str  # models:/<name>/<version>
    ordering: str  # the operating point chosen on validation, in words
    metrics: dict[str, float]
    judged_by: str  # who judged the test.* metrics: ground_truth or teacher ("": not measured)
    candidate: bool  # whether this run pointed `candidate` at the version

    def summary(self) -> str:
        """What `python -m flows.train` ends with."""
        trained = self.training
        lines = [
            "",
            f"student trained: {trained.steps} steps, stopped by {trained.stopped_by}",
        ]
        if trained.stopped_by == "time":
            lines.append(f"  WARNING: {STOPPED_BY_TIME}")
        alias = f" as @{CANDIDATE}" if self.candidate else ""
        lines += [
            f"  best validation loss {trained.best_val_loss}",
            f"  folder {trained.folder}",
            f"  registered {self.model_uri}{alias} (MLflow run {self.run_id})",
            f"  operating point: {self.ordering}",
            f"  metrics (val.*: teacher-judged validation rooms; {self._held_out()}):",
            *(f"    {name} {value:.3f}" for name, value in sorted(self.metrics.items())),
        ]
        return "\n".join(lines)

    def _held_out(self) -> str:
        if not self.judged_by:
            return "held-out rooms: by the evaluation (`python -m flows.evaluate`)"
        return f"test.*: held-out rooms, judged by {self.judged_by}"


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
    sweep: SweepReport | None = None  # the train step's, when it swept

    def summary(self) -> str:
        """The lines the command ends with; the page to open comes last."""
        promotion = self.decision.reason if self.decision else "promotion off (eval.promote)"
        champion = f"v{self.champion_version}" if self.champion_version else "none"
        mlflow_ui = f"mlflow ui --backend-store-uri {setup_runtime().mlflow_uri}"
        swept = [] if self.sweep is None else ["", "train step sweep:", "", self.sweep.table()]
        return "\n".join(
            [
                *swept,
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


def require_inputs(cfg: MarsConfig, step: str) -> None:
    """What `step` reads must be there before it starts (before Prefect, before a model
    loads): else a `UserInputError` naming the first missing artifact and the command that
    writes it, from `STEPS`. The first step reads raw data instead (`_require_raw_data`)."""
    inputs = STEPS[step]
    if step == "ingest":
        _require_raw_data(cfg)
    optional = {*inputs.optional, *inputs.one_of}
    for name in inputs.files:
        if name not in optional and not _artifact(cfg, name).is_file():
            raise UserInputError(f"{_missing(cfg, name)}: run `{_writer(cfg, name)}` first")
    if inputs.one_of and not any(_artifact(cfg, name).is_file() for name in inputs.one_of):
        missing = " and ".join(_missing(cfg, name) for name in inputs.one_of)
        commands = " or ".join(f"`{_writer(cfg, name)}`" for name in inputs.one_of)
        raise UserInputError(f"{missing}: {step} needs one of them; run {commands} first")


def require_search_inputs(cfg: MarsConfig) -> None:
    """The service needs the catalogue and a published index whose parts are all there
    (`check_openable`: a damaged one names the repair command) before it starts: the index
    opens inside the web server, where a mistake cannot be one line. A search command or a
    batch checks only that they are there (`require_inputs`): the index is checked where it
    is opened (`build_funnel`), once."""
    from mars_core.index.verify import check_openable

    require_inputs(cfg, "search")
    check_openable(IndexSnapshot.current(cfg.index.dir))


def _missing(cfg: MarsConfig, name: str) -> str:
    if name == INDEX_MANIFEST:
        return f"no index at {cfg.index.dir} (no {MANIFEST_FILE})"
    return f"no {name} in {cfg.data.out_dir}"


def _writer(cfg: MarsConfig, name: str) -> str:
    """The command that writes artifact `name`: its step's flow (with its arguments)."""
    step = next(s for s, i in STEPS.items() if name in (*i.outputs, *i.also_writes))
    arguments = WRITER_ARGS.get(name, "").format(out_dir=cfg.data.out_dir)
    return f"python -m flows.{step} {arguments}".strip()


def _require_raw_data(cfg: MarsConfig) -> None:
    """A catalogue of one's own must be on disk before anything starts (the generated world
    is made by the first step)."""
    if cfg.data.source == "abo" and cfg.data.acquire == "local":
        raw = Path(cfg.data.raw_dir)
        if not raw.is_dir():
            raise UserInputError(
                f"no ABO data at {raw}: unpack abo-listings.tar and abo-images-small.tar there, "
                "set data.raw_dir=<folder>, or set data.acquire=download"
            )
