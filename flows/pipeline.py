"""The whole DAG as one flow: ingest -> index -> mining -> label -> train -> evaluate -> search.

    python -m flows.pipeline [hydra overrides...]

Every step is its own flow (each also runs alone: `python -m flows.<step>`), called here
through one cached task: a step whose input artifacts, config groups and code are unchanged is
skipped and hands on its last report, so a second run does no work and changing
`train.learning_rate` re-runs only train, evaluate and the sample searches. Steps hand each
other files and MLflow model versions, never models. `pipeline.refresh=true` re-runs all.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["pipeline"])  # the program: answers --help before the imports below

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow

from flows.evaluate import evaluate
from flows.index import build_index
from flows.inference import inference
from flows.ingest import ingest
from flows.label import label
from flows.mining import mining
from flows.runners import run_on_pool
from flows.train import train
from mars_core.agent.adapter import CANDIDATE, CHAMPION, alias_version
from mars_core.app.batch_search import SearchReport, run_folder
from mars_core.app.compose import load_config
from mars_core.app.steps import (
    PipelineReport,
    outputs_missing,
    require_inputs,
    step_fingerprint,
)
from mars_core.config import MarsConfig
from mars_core.evaluation.report import markdown_table
from mars_core.infra.tracking import mlflow_run
from mars_core.mining.schema import HELDOUT_PAIRS_FILE
from tasks.flow_process import prepare_flow_process
from tasks.pipeline import cached_step
from tasks.search import write_demo_requests

SAMPLES_NAME = "pipeline"


def label_both(overrides: list[str]) -> list[dict]:
    """Label the training pairs, then the held-out pairs the evaluation compares with."""
    cfg = load_config(overrides)
    heldout = Path(cfg.data.out_dir) / HELDOUT_PAIRS_FILE
    return [label(overrides), label(overrides, pairs=str(heldout))]


def sample_searches(overrides: list[str]) -> SearchReport:
    """The configured sample searches (`demo.requests`) with the serving student."""
    cfg = load_config(overrides)
    folder = run_folder(Path(cfg.paths.reports), SAMPLES_NAME)
    requests = write_demo_requests(cfg, str(folder / f"{SAMPLES_NAME}.jsonl"))
    return inference(requests, overrides, out_dir=str(folder))


def train_on_pool(overrides: list[str]) -> dict:
    """The train flow on `pipeline.train_work_pool` (a GPU machine's worker); it registers the
    student in the shared MLflow registry, where its version is read back."""
    cfg = load_config(overrides)
    run = run_on_pool("train", cfg.pipeline.train_work_pool, overrides)
    return {"version": alias_version(cfg.student.registry, CANDIDATE), "flow_run": str(run.id)}


def _step(
    cfg: MarsConfig, name: str, run: Callable[[list[str]], Any], overrides: list[str], **up: Any
) -> Any:
    """Run one step unless its fingerprint (inputs, groups, upstream) was run before."""
    key = step_fingerprint(cfg, name, upstream=repr(sorted(up.items())))
    refresh = cfg.pipeline.refresh or outputs_missing(cfg, name)
    step = cached_step.with_options(name=name, refresh_cache=refresh)
    return step(run, overrides, name, key)


@flow(name="pipeline")
def pipeline(overrides: list[str] | None = None) -> PipelineReport:
    """Every step in order; each skips itself when nothing it reads has changed."""
    overrides = list(overrides or [])
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "pipeline", cfg, overrides):
        _step(cfg, "ingest", ingest, overrides)
        _step(cfg, "index", build_index, overrides)
        _step(cfg, "mining", mining, overrides)
        _step(cfg, "label", label_both, overrides)
        trainer = train_on_pool if cfg.pipeline.train_work_pool else train
        trained = _step(cfg, "train", trainer, overrides)
        evaluated = _step(cfg, "evaluate", evaluate, overrides, candidate=trained["version"])
        champion = alias_version(cfg.student.registry, CHAMPION)
        searched = _step(
            cfg,
            "search",
            sample_searches,
            overrides,
            champion=champion,
            candidate=trained["version"],
        )
    return PipelineReport(
        candidate_version=trained["version"],
        champion_version=champion,
        table=markdown_table(evaluated.results, cfg.eval.headline),
        judged_by=evaluated.judged_by,
        decision=evaluated.decision,
        eval_files=evaluated.files,
        searches=searched,
    )


def _run(call: Invocation) -> None:
    """Check config and raw inputs first, so a mistake is one line, not a failed flow run."""
    cfg = load_config(call.overrides)
    require_inputs(cfg, "ingest")
    prepare_flow_process(cfg, debug=call.debug)
    report = pipeline(call.overrides)
    print(report.summary())


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.pipeline [hydra overrides...]`"""
    run_app(APPS["pipeline"], argv, _run)


if __name__ == "__main__":
    main()
