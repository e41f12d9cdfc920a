"""SFT tasks: labelled pairs -> SFT examples; examples -> a trained student folder; the folder
-> a registered MLflow model version; an alias moved to a version."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from mars_core.agent.mlflow_model import log_student
from mars_core.config import StudentConfig, TrainConfig
from mars_core.infra.registry import describe_version, set_alias
from mars_core.training.data import SFTData, sft_data_for
from mars_core.training.trainer import TrainResult, checkpoint_dir, train_student
from tasks.progress import PrefectProgress


@task(name="build-sft-examples")
def build_examples_task(
    labels_file: str, catalogue_dir: str, train: TrainConfig, fit_threshold: float
) -> SFTData:
    """SFT examples from the `ok` labels, split by room and product into train and
    validation, the training side's grades balanced as `train.grade_balance` says."""
    data = sft_data_for(Path(labels_file), Path(catalogue_dir), train, fit_threshold)
    get_run_logger().info("SFT examples: %s", data.sizes())
    return data


@task(name="train-student")
def train_student_task(
    data: SFTData,
    train: TrainConfig,
    student: StudentConfig,
    models_dir: str,
    checkpoints_root: str,
    out_dir: str,
    max_image_pixels: int,
) -> TrainResult:
    """Train (resuming from this job's last checkpoint, if any) and save the student. The
    Prefect UI shows the steps done of `train.max_steps` (artifact `sft-steps`)."""
    work_dir = checkpoint_dir(Path(checkpoints_root), data, train, student)
    progress = PrefectProgress("sft-steps", f"SFT steps done of train.max_steps={train.max_steps}")
    result = train_student(
        data,
        train,
        student,
        models_dir=Path(models_dir),
        work_dir=work_dir,
        out_dir=Path(out_dir),
        max_image_pixels=max_image_pixels,
        on_log=lambda _metrics, step: progress(step, train.max_steps),
    )
    progress.finish()
    get_run_logger().info(
        "trained %d steps (%s), best validation loss %s, resumed from %s",
        result.steps,
        result.stopped_by,
        result.best_val_loss,
        result.resumed_from,
    )
    return result


@task(name="register-student", retries=2, retry_delay_seconds=[2, 10])
def register_student_task(
    folder: str,
    student: StudentConfig,
    max_image_pixels: int,
    registry: str,
    description: str,
    tags: dict[str, str],
) -> int:
    """The student folder as an MLflow model of the active run, registered as a new version
    of `registry` with its description and tags; the version number."""
    version = log_student(Path(folder), student, max_image_pixels=max_image_pixels, name=registry)
    describe_version(registry, version, description=description, tags=tags)
    return version


@task(name="set-alias", retries=2, retry_delay_seconds=[2, 10])
def set_alias_task(registry: str, alias: str, version: int) -> None:
    """Point `alias` (`candidate`) at `version`."""
    set_alias(registry, alias, version)
