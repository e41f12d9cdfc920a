"""Student versions in the MLflow registry, registered as the train flow does (an MLflow
model) or as versions before it were (a plain folder of run artifacts)."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient

from mars_core.agent.mlflow_model import log_student
from mars_core.config import MarsConfig
from mars_core.infra.registry import set_alias
from mars_core.infra.tracking import mlflow_run


def register_student(folder: Path, cfg: MarsConfig, name: str, alias: str | None = None) -> int:
    """`folder` (a LoRA adapter or whole model of `cfg.student`) as a new MLflow-model version
    of `name`, in a run of its own; its version number."""
    with mlflow_run("mars-tests", "register"):
        version = log_student(
            folder, cfg.student, max_image_pixels=cfg.data.max_image_pixels, name=name
        )
    if alias is not None:
        set_alias(name, alias, version)
    return version


def register_plain_folder(folder: Path, name: str, alias: str) -> int:
    """`folder` as a version whose source is the folder itself (how versions were registered
    before the student was an MLflow model)."""
    client = MlflowClient()
    with mlflow_run("mars-tests", "register-folder") as run:
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/adapter"
    version = int(client.create_model_version(name, source, run_id=run.info.run_id).version)
    client.set_registered_model_alias(name, alias, str(version))
    return version
