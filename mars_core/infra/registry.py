"""The MLflow model registry of students: versions, aliases, their tags, and where a version's
files are.

Infrastructure on purpose: it speaks MLflow and knows no model code, so the agent (which loads
a version), the evaluation (which tags and promotes one), the training flow (which registers
one) and the service (which follows the champion) all share it without importing each other.

A version is an MLflow model (pyfunc, `mars_core/agent/mlflow_model.py`) whose artifact
`STUDENT_ARTIFACT` is the student folder (a LoRA adapter or a whole fine-tuned model). Versions
registered before that are a plain student folder; both resolve to the folder
(`registered_folder`), so old aliases keep working. The SFT flow points `candidate` at the
version that is best on validation, the evaluation moves `champion` to a candidate that wins on
held-out rooms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mars_core.infra.errors import AdapterNotFoundError, one_line

MODELS_SCHEME = "models:/"
CANDIDATE = "candidate"
CHAMPION = "champion"
# The artifact of the student's MLflow model that holds the student folder.
STUDENT_ARTIFACT = "student"
MLMODEL_FILE = "MLmodel"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def registry_uri(model: str, alias: str) -> str:
    return f"{MODELS_SCHEME}{model}@{alias}"


def version_uri(model: str, version: int) -> str:
    return f"{MODELS_SCHEME}{model}/{version}"


def is_registry_uri(spec: str | None) -> bool:
    """A `models:/<name>@<alias>` or `models:/<name>/<version>` URI (not a logged model id)."""
    return _MODEL_URI.match(spec or "") is not None


def alias_version(model: str, alias: str) -> int | None:
    """The model version `alias` points at, or None when the model or the alias is missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return int(MlflowClient().get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def set_alias(model: str, alias: str, version: int) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(model, alias, str(version))


def registry_version(spec: str | None) -> tuple[str, int] | None:
    """The registered model and version a `models:/` spec names now; None for a folder, the
    base student or a missing alias."""
    match = _MODEL_URI.match(spec or "")
    if match is None:
        return None
    if match["version"]:
        return match["name"], int(match["version"])
    version = alias_version(match["name"], match["alias"])
    return None if version is None else (match["name"], version)


def describe_registered(spec: str | None) -> str:
    """Which trained weights rank results, as a page or table should say it."""
    if spec is None:
        return "no adapter (base weights)"
    match = _MODEL_URI.match(spec)
    if match is None:
        return spec
    if match["version"]:
        return f"{match['name']} v{match['version']}"
    version = alias_version(match["name"], match["alias"])
    return f"{match['name']} v{version} (@{match['alias']})"


def version_run_id(model: str, version: int) -> str | None:
    """The MLflow run that trained `version` (its params, curves and metrics)."""
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(model, str(version)).run_id


def version_of_run(name: str, run_id: str) -> int | None:
    """The version of `name` that run `run_id` registered, if any."""
    from mlflow import MlflowClient

    found = MlflowClient().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return int(found[0].version) if found else None


def version_tags(name: str, version: int) -> dict[str, str]:
    """A registered model version's tags; none when the registry has no such version."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return dict(MlflowClient().get_model_version(name, str(version)).tags)
    except MlflowException:
        return {}


def describe_version(
    name: str, version: int, *, description: str | None = None, tags: Mapping[str, Any]
) -> None:
    """Say on the registry page what a model version is (a one-line description) and how it
    did (tags), so the versions compare at a glance."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if description is not None:
        client.update_model_version(name, str(version), description=description)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def register_version(model_uri: str, name: str, *, run_id: str, model_id: str | None = None) -> int:
    """Register the logged MLflow model `model_uri` (trained by `run_id`) as a new version of
    `name`, created when new; the version number."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
    return int(version.version)


def registered_folder(spec: str, accepted: str) -> Path:
    """The local student folder a `models:/` URI names: the MLflow model's `student` artifact,
    or the version's whole source for one registered as a plain folder. `accepted` says what
    a user may give instead, for the error."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _MODEL_URI.match(spec)
    if match is None:
        raise AdapterNotFoundError(f"adapter {spec!r} is not a model URI we read; give {accepted}")
    name, alias, version = match["name"], match["alias"], match["version"]
    client = MlflowClient()
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=found.source))
    except MlflowException as e:
        raise AdapterNotFoundError(
            f"adapter {spec!r} not found in the MLflow registry at {mlflow.get_tracking_uri()} "
            f"({one_line(e)}); give {accepted}"
        ) from e
    return model_artifact(root, STUDENT_ARTIFACT) if (root / MLMODEL_FILE).is_file() else root


def model_artifact(root: Path, artifact: str) -> Path:
    """Where an MLflow pyfunc model folder keeps the artifact `artifact` (its MLmodel says)."""
    spec = yaml.safe_load((root / MLMODEL_FILE).read_text())
    artifacts = spec.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    if artifact not in artifacts:
        raise AdapterNotFoundError(
            f"the MLflow model at {str(root)!r} has no {artifact!r} artifact: it is not a student"
        )
    return root / artifacts[artifact]["path"]
