"""The whole DAG as one flow: ingest -> index -> mining -> label -> train -> evaluate -> search.

    python -m flows.pipeline [hydra overrides...]
    python -m flows.pipeline -m train.learning_rate=5e-4,1e-3    # the train step swept

Every step is its own flow (each also runs alone: `python -m flows.<step>`), called here
through one cached task: a step whose input artifacts, config groups and code are unchanged is
skipped and hands on its last report, so a second run does no work and changing
`train.learning_rate` re-runs only train, evaluate and the sample searches. Steps hand each
other files and MLflow model versions, never models. `pipeline.refresh=true` re-runs all.
With `-m` the train step is a sweep (`flows.train.train_sweep`): the steps before it run once
for every job, its best student on validation is the candidate the evaluation compares with
the champion.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["pipeline"])  # the program: answers --help before the imports below

from collections.abc import Callable
from functools import partial
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
from flows.train import train, train_sweep
from mars_core.app.batch_search import SearchReport, run_folder
from mars_core.app.compose import load_config, parameter_overrides
from mars_core.app.steps import (
    PipelineReport,
    TrainStep,
    check_pipeline_sweep,
    outputs_missing,
    require_inputs,
    step_fingerprint,
)
from mars_core.app.sweep import check_sweep, split_overrides, swept_keys
from mars_core.config import MarsConfig
from mars_core.evaluation.report import markdown_table
from mars_core.infra.registry import CANDIDATE, CHAMPION, alias_version
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


def train_here(overrides: list[str]) -> TrainStep:
    """The train flow in this process; the evaluation step after it measures the student on
    the held-out rooms (onto the student's run)."""
    return TrainStep(train(overrides=overrides, held_out=False).version)


def train_on_pool(overrides: list[str]) -> TrainStep:
    """The train flow on `pipeline.train_work_pool` (a GPU machine's worker); it registers the
    student in the shared MLflow registry, where its version is read back."""
    cfg = load_config(overrides)
    run_on_pool("train", cfg.pipeline.train_work_pool, overrides, held_out=False)
    return TrainStep(alias_version(cfg.student.registry, CANDIDATE))


def train_swept(overrides: list[str], sweep: list[str]) -> TrainStep:
    """The train step as a sweep: its best job on validation is the candidate."""
    report = train_sweep(sweep, overrides=overrides)
    return TrainStep(report.best.version if report.best else None, report)


def _trainer(cfg: MarsConfig, sweep: list[str]) -> Callable[[list[str]], TrainStep]:
    if sweep:
        return partial(train_swept, sweep=sweep)
    return train_on_pool if cfg.pipeline.train_work_pool else train_here


def _step(
    cfg: MarsConfig, name: str, run: Callable[[list[str]], Any], overrides: list[str], **up: Any
) -> Any:
    """Run one step unless its fingerprint (inputs, groups, upstream) was run before."""
    key = step_fingerprint(cfg, name, upstream=repr(sorted(up.items())))
    refresh = cfg.pipeline.refresh or outputs_missing(cfg, name)
    step = cached_step.with_options(name=name, refresh_cache=refresh)
    return step(run, overrides, name, key)


def check_sweep_of_train(overrides: list[str], sweep: list[str]) -> None:
    """The sweep's jobs compose, and it varies only what the train step reads."""
    check_sweep([*overrides, *sweep])
    check_pipeline_sweep(swept_keys(sweep))


@flow(name="pipeline")
def pipeline(
    experiment: str | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    sweep: list[str] | None = None,
) -> PipelineReport:
    """Every step in order; each skips itself when nothing it reads has changed.

    Args:
        experiment: a profile of conf/experiment (`full`: the real models on a GPU); empty:
            the offline tiny profile.
        max_steps: training steps (train.max_steps).
        learning_rate: peak learning rate (train.learning_rate).
        seed: training seed (train.seed).
        overrides: any other Hydra overrides, as on the command line.
        sweep: swept overrides of the train step, as after `-m` on the command line
            (`["train.learning_rate=5e-4,1e-3"]`); empty: one student.
    """
    named = parameter_overrides(
        experiment, max_steps=max_steps, learning_rate=learning_rate, seed=seed
    )
    overrides = [*named, *(overrides or [])]
    sweep = list(sweep or [])
    if sweep:
        check_sweep_of_train(overrides, sweep)
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "pipeline", cfg, [*overrides, *sweep]):
        _step(cfg, "ingest", ingest, overrides)
        _step(cfg, "index", build_index, overrides)
        _step(cfg, "mining", mining, overrides)
        _step(cfg, "label", label_both, overrides)
        trained = _step(cfg, "train", _trainer(cfg, sweep), overrides, sweep=sweep)
        evaluated = _step(cfg, "evaluate", evaluate, overrides, candidate=trained.version)
        champion = alias_version(cfg.student.registry, CHAMPION)
        searched = _step(
            cfg,
            "search",
            sample_searches,
            overrides,
            champion=champion,
            candidate=trained.version,
        )
    return PipelineReport(
        sweep=trained.sweep,
        candidate_version=trained.version,
        champion_version=champion,
        table=markdown_table(evaluated.results, cfg.eval.headline),
        judged_by=evaluated.judged_by,
        decision=evaluated.decision,
        eval_files=evaluated.files,
        searches=searched,
    )


def _run(call: Invocation) -> None:
    """Check config and raw inputs first, so a mistake is one line, not a failed flow run."""
    overrides, sweep = split_overrides(call.overrides) if call.multirun else (call.overrides, [])
    if sweep:
        check_sweep_of_train(overrides, sweep)
    cfg = load_config(overrides)
    require_inputs(cfg, "ingest")
    prepare_flow_process(cfg, debug=call.debug)
    print(pipeline(overrides=overrides, sweep=sweep).summary())


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.pipeline [hydra overrides...]`"""
    run_app(APPS["pipeline"], argv, _run)


if __name__ == "__main__":
    main()
