"""SFT flow: the teacher's labels -> a trained student, registered and measured on its own run.

    python -m flows.train train.learning_rate=1e-4 train.lora_r=8
    python -m flows.train -m train.learning_rate=5e-4,1e-3 train.seed=0,1      # a sweep
    python -m flows.train -m hparams_search=optuna                            # sampled trials

`train` builds SFT examples from `labels.parquet` (beside the catalogue), trains with `train.*`
(full, lora or qlora), saves the model folder under `${paths.artifacts}/students/<run id>/`,
registers it as an MLflow model (a new version of `mars-student`), chooses its operating point
on validation rooms and measures it there (`val.*`) and on the held-out rooms (`test.*`): one
MLflow run holds its params, curves and metrics. A re-run after an interruption resumes from
the last checkpoint. `train_sweep` runs Hydra's sweeper over `train` (one child flow run and
one child MLflow run per job) and points `candidate` at the best job on validation; the
evaluation moves `champion` only when the candidate wins on held-out rooms.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["train"])  # the program: answers --help before the imports below

import math
from pathlib import Path

import mlflow
from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run as prefect_flow_run

from flows.runners import submit_to_pool, wait_for
from mars_core.app.compose import load_config, parameter_overrides
from mars_core.app.steps import StudentReport, require_inputs
from mars_core.app.sweep import (
    FLOW_RUN_TAG,
    JobFailed,
    SweepJob,
    SweepReport,
    best_job,
    check_sweep,
    job_trained_elsewhere,
    jobs_of,
    name_job_runs,
    run_sweep,
    split_overrides,
)
from mars_core.config import MarsConfig
from mars_core.evaluation.assess import HELD_OUT, VALIDATION, run_metrics
from mars_core.infra.errors import one_line
from mars_core.infra.registry import CANDIDATE, version_uri
from mars_core.infra.tracking import mlflow_run
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.trainer import TrainResult, registry_entry
from tasks.evaluate import held_out_task, validate_student_task
from tasks.flow_process import prepare_flow_process
from tasks.train import (
    build_examples_task,
    register_student_task,
    set_alias_task,
    train_student_task,
)

GRID_ARTIFACT = "validation_grid.md"
SWEEP_ARTIFACT = "sweep.md"


def validate(overrides: list[str]) -> MarsConfig:
    """Config and inputs checked before the flow starts: one error line, not a traceback."""
    cfg = load_config(overrides)
    require_inputs(cfg, "train")
    cfg.check_trainable()
    return cfg


@flow(name="train")
def train(
    experiment: str | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    candidate: bool = True,
    held_out: bool = True,
    sweep_run: str | None = None,
) -> StudentReport:
    """Train one student on the teacher's labels, register it and measure it on its run.

    Args:
        experiment: a profile of conf/experiment (`full`: the real models on a GPU); empty:
            the offline tiny profile.
        max_steps: training steps (train.max_steps).
        learning_rate: peak learning rate (train.learning_rate).
        seed: training seed (train.seed).
        overrides: any other Hydra overrides, as on the command line (`train.lora_r=8`).
        candidate: point the registry alias `candidate` at the new version (a sweep points
            it at its best job instead).
        held_out: measure the student on the held-out rooms too (`test.*`); the pipeline's
            evaluation step, which measures its candidate there next, turns it off.
        sweep_run: the MLflow run of the sweep this job belongs to (set by a sweep whose jobs
            run on a work pool): this run becomes its child.
    """
    named = parameter_overrides(
        experiment, max_steps=max_steps, learning_rate=learning_rate, seed=seed
    )
    overrides = [*named, *(overrides or [])]
    cfg = validate(overrides)
    registry = cfg.student.registry
    flow_run = {FLOW_RUN_TAG: str(prefect_flow_run.id)}
    with mlflow_run(
        cfg.mlflow.experiment, "train", cfg, overrides, parent_run_id=sweep_run, tags=flow_run
    ) as run:
        data = build_examples_task(
            str(Path(cfg.data.out_dir) / LABELS_FILE),
            cfg.data.out_dir,
            cfg.train,
            cfg.teacher.fit_threshold,
        )
        mlflow.log_params({"dataset.hash": data.dataset_hash} | _prefixed(data.sizes()))
        students = Path(cfg.paths.artifacts) / "students"
        result = train_student_task(
            data,
            cfg.train,
            cfg.student,
            cfg.paths.models,
            str(students / "checkpoints"),
            str(students / run.info.run_id),
            cfg.data.max_image_pixels,
        )
        _log_result(result)
        description, tags = registry_entry(
            result, data, cfg.train, data_name=cfg.data.name, teacher=cfg.teacher.name
        )
        version = register_student_task(
            result.folder, cfg.student, cfg.data.max_image_pixels, registry, description, tags
        )
        choice = validate_student_task(cfg, registry, version)
        metrics = run_metrics(VALIDATION, choice.metrics, cfg.eval.adapter_metrics)
        mlflow.set_tags({"ordering": choice.ordering.describe()})
        judged_by = ""
        if held_out:
            measured = held_out_task(cfg, version_uri(registry, version))
            metrics |= run_metrics(HELD_OUT, measured.metrics, cfg.eval.adapter_metrics)
            judged_by = measured.judged_by
            mlflow.set_tags({f"{HELD_OUT}.judged_by": judged_by})
        mlflow.log_metrics(metrics)
        mlflow.log_text(choice.grid_table(), GRID_ARTIFACT)
        if candidate:
            set_alias_task(registry, CANDIDATE, version)
    return StudentReport(
        training=result,
        sizes=data.sizes(),
        run_id=run.info.run_id,
        version=version,
        model_uri=version_uri(registry, version),
        ordering=choice.ordering.describe(),
        metrics=metrics,
        judged_by=judged_by,
        candidate=candidate,
    )


@flow(name="train-sweep")
def train_sweep(
    sweep: list[str],
    experiment: str | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> SweepReport:
    """Train one student per job of a Hydra sweep; the best on validation becomes candidate.

    Args:
        sweep: the swept overrides, as after `-m` on the command line:
            `["train.learning_rate=5e-4,1e-3", "train.seed=0,1"]` (every combination), or
            `["hparams_search=optuna"]` / `["hydra/sweeper=optuna", ...]` (sampled trials).
        experiment: a profile of conf/experiment (`full`: the real models on a GPU).
        max_steps: training steps of every job (train.max_steps).
        learning_rate: learning rate of every job, unless swept (train.learning_rate).
        seed: training seed of every job, unless swept (train.seed).
        overrides: any other Hydra overrides shared by every job.
    """
    named = parameter_overrides(
        experiment, max_steps=max_steps, learning_rate=learning_rate, seed=seed
    )
    arguments = [*named, *(overrides or []), *sweep]
    check_sweep(arguments)
    cfg = load_config(split_overrides(arguments)[0])
    # Jobs on a pool all go out at once where the sweeper enumerates them (Optuna waits for
    # each trial's value before it samples the next).
    parallel = bool(cfg.sweep.work_pool) and jobs_of(arguments) is not None
    jobs: list[SweepJob] = []
    pending: list[tuple[int, list[str], FlowRun]] = []
    with mlflow_run(cfg.mlflow.experiment, "sweep", cfg, arguments) as parent:

        def job(number: int, job_overrides: list[str]) -> float:
            if parallel:
                run = submit_to_pool(
                    "train", cfg.sweep.work_pool, _on_pool(job_overrides, parent.info.run_id)
                )
                pending.append((number, job_overrides, run))
                return math.nan  # the basic sweeper reads no value
            outcome = _sweep_job(cfg, number, job_overrides, parent.info.run_id)
            jobs.append(outcome)
            if outcome.failed:
                raise JobFailed(outcome.error)
            return outcome.metrics[cfg.sweep.objective]

        folder = run_sweep(arguments, job)
        ended = wait_for([run for *_, run in pending])
        jobs += [_pooled(cfg, n, o, run) for (n, o, _), run in zip(pending, ended, strict=True)]
        name_job_runs(jobs)
        best = best_job(jobs, cfg.sweep.objective, cfg.sweep.direction)
        if best is not None and best.version is not None:
            set_alias_task(cfg.student.registry, CANDIDATE, best.version)
        report = SweepReport(
            jobs=jobs,
            objective=cfg.sweep.objective,
            direction=cfg.sweep.direction,
            registry=cfg.student.registry,
            folder=str(folder),
            run_id=parent.info.run_id,
            flow_run_id=str(prefect_flow_run.id),
            columns=_columns(cfg),
            best=best,
        )
        mlflow.log_text(report.table(), SWEEP_ARTIFACT)
        mlflow.log_metrics({"jobs": len(jobs), "failed_jobs": sum(j.failed for j in jobs)})
    return report


def _sweep_job(cfg: MarsConfig, number: int, overrides: list[str], parent: str) -> SweepJob:
    """One job, waited for: the train flow as a child run here, or on `sweep.work_pool`; a
    failure is the job's outcome, not the sweep's end."""
    if cfg.sweep.work_pool:
        [run] = wait_for(
            [submit_to_pool("train", cfg.sweep.work_pool, _on_pool(overrides, parent))]
        )
        return _pooled(cfg, number, overrides, run)
    state = train(overrides=overrides, candidate=False, return_state=True)
    if not state.is_completed():
        error = state.result(raise_on_failure=False)
        return SweepJob(number, overrides, error=one_line(error) or state.name)
    report: StudentReport = state.result()
    job = SweepJob(number, overrides, report.version, report.run_id, report.metrics)
    return job.measured(cfg.sweep.objective)


def _on_pool(overrides: list[str], parent: str) -> dict[str, object]:
    """A job's parameters as a run of the train flow's deployment, a child of MLflow run
    `parent` (the sweep's)."""
    return {"overrides": overrides, "candidate": False, "sweep_run": parent}


def _pooled(cfg: MarsConfig, number: int, overrides: list[str], run: FlowRun) -> SweepJob:
    ended = run.state.name if run.state else "unknown"
    job = job_trained_elsewhere(
        number, overrides, cfg.mlflow.experiment, cfg.student.registry, str(run.id), ended
    )
    return job.measured(cfg.sweep.objective)


def _columns(cfg: MarsConfig) -> list[str]:
    """The sweep table's metrics beside the objective: the headline ones on held-out rooms."""
    shown = [m for m in cfg.eval.headline if m in cfg.eval.adapter_metrics]
    return [f"{HELD_OUT}.{m}" for m in shown]


def _prefixed(sizes: dict[str, int]) -> dict[str, int]:
    return {f"dataset.{k}": v for k, v in sizes.items()}


def _log_result(result: TrainResult) -> None:
    """Loss curves and learning rate by step, and the run's outcome."""
    for name, series in (
        ("train_loss", result.train_loss),
        ("val_loss", result.val_loss),
        ("learning_rate", result.learning_rate),
    ):
        for step, value in series:
            mlflow.log_metric(name, value, step=step)
    mlflow.log_metrics({"steps": result.steps, "train_seconds": result.seconds})
    if result.best_val_loss is not None:
        mlflow.log_metric("best_val_loss", result.best_val_loss)
    mlflow.set_tags({"stopped_by": result.stopped_by, "resumed_from": str(result.resumed_from)})


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.train [-m] [hydra overrides...]`"""
    run_app(APPS["train"], argv, _run)


def _run(call: Invocation) -> None:
    if call.multirun:
        shared, swept = split_overrides(call.overrides)
        prepare_flow_process(validate(shared), debug=call.debug)
        print(train_sweep(swept, overrides=shared).summary())
        return
    prepare_flow_process(validate(call.overrides), debug=call.debug)
    print(train(overrides=call.overrides).summary())


if __name__ == "__main__":
    main()
