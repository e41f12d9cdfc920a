"""SFT flow: the teacher's labels -> a trained student, logged to MLflow and registered.

`python -m flows.train train.learning_rate=1e-4 train.lora_r=8` builds SFT examples from
`labels.parquet` (beside the catalogue), trains with `train.*` (full, lora or qlora), saves the
model folder under `${paths.artifacts}/students/<mlflow run id>/`, logs config, dataset hash
and sizes, loss curves and learning rate, and registers the folder as a new version of
`mars-student` with the alias `candidate` (the evaluation decides `champion`). A re-run after
an interruption resumes from the last checkpoint.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["train"])  # the program: answers --help before the imports below

from dataclasses import asdict
from pathlib import Path

import mlflow
from prefect import flow

from mars_core.agent.adapter import CANDIDATE, register_adapter, registry_uri
from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.config import MarsConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.tracking import describe_version, mlflow_run
from mars_core.teacher.schema import LABELS_FILE
from mars_core.training.trainer import TrainResult, registry_entry
from tasks.flow_process import prepare_flow_process
from tasks.train import build_examples_task, train_student_task


def labels_file(cfg: MarsConfig) -> Path:
    return Path(cfg.data.out_dir) / LABELS_FILE


def validate(overrides: list[str]) -> MarsConfig:
    """Config and inputs checked before the flow starts: one error line, not a traceback."""
    cfg = load_config(overrides)
    require_inputs(cfg, "train")
    if cfg.student.load_in_4bit and cfg.train.method != "qlora":
        raise UserInputError(
            f"student.load_in_4bit=true but train.method={cfg.train.method}: only qlora trains "
            "over a 4-bit base; set train.method=qlora or student.load_in_4bit=false"
        )
    return cfg


@flow(name="train")
def train(overrides: list[str] | None = None) -> dict:
    """Build examples, train, log and register the student; returns a summary."""
    cfg = validate(list(overrides or []))
    with mlflow_run(cfg.mlflow.experiment, "train", cfg, overrides) as run:
        data = build_examples_task(
            str(labels_file(cfg)), cfg.data.out_dir, cfg.train, cfg.teacher.fit_threshold
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
        version = register_adapter(
            Path(result.folder),
            name=cfg.student.registry,
            alias=CANDIDATE,
            artifact_path="student",
        )
        description, tags = registry_entry(
            result, data, cfg.train, data_name=cfg.data.name, teacher=cfg.teacher.name
        )
        describe_version(cfg.student.registry, version, description=description, tags=tags)
    return (
        asdict(result)
        | {
            "run_id": run.info.run_id,
            "version": version,
            "model_uri": registry_uri(cfg.student.registry, CANDIDATE),
        }
        | {"sizes": data.sizes()}
    )


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
    """`python -m flows.train [hydra overrides...]`"""
    run_app(APPS["train"], argv, _run)


def _run(call: Invocation) -> None:
    prepare_flow_process(validate(call.overrides), debug=call.debug)
    summary = train(call.overrides)
    print(f"\nstudent trained: {summary['steps']} steps, stopped by {summary['stopped_by']}")
    if summary["stopped_by"] == "time":
        print("  WARNING: stopped by train.time_budget_s: this model depends on the machine's load")
    print(f"  best validation loss {summary['best_val_loss']}")
    print(f"  folder {summary['folder']}")
    print(f"  registered {summary['model_uri']} (version {summary['version']})")


if __name__ == "__main__":
    main()
