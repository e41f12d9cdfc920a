"""Trained students for the agent: a local folder or an MLflow registered-model alias.

A student folder is either a LoRA adapter (`adapter_config.json`: applied onto the configured
base) or a whole fine-tuned model (`config.json` + processor files, what `train.method=full`
saves: loaded instead of the configured base). Both come through `student.adapter`.

Registering: MLflow's `register_model("runs:/...")` refuses a raw adapter folder (it is not an
MLflow model), so an adapter is logged as plain run artifacts and registered with
`create_model_version(source=<artifact uri>)`, then pointed at by an alias (`champion`).
Resolving `models:/<name>@<alias>` reads that version's source back and returns the local
folder (a local artifact store hands back its own path; a remote one is downloaded).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mars_core.infra.errors import AdapterNotFoundError, UserInputError, one_line

MODELS_SCHEME = "models:/"
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
# Registry aliases of the student (`mlflow.registered_model`): the SFT flow points `candidate`
# at each new version, the evaluation moves `champion` to a candidate that wins.
CANDIDATE = "candidate"
CHAMPION = "champion"
# `student.adapter` values that are not a folder or a model URI.
SERVE_CHAMPION = "auto"
NO_ADAPTER = "none"
ACCEPTED = (
    f"a LoRA adapter folder (holding {ADAPTER_CONFIG}), a fine-tuned model folder (holding "
    f"{MODEL_CONFIG}) or models:/<name>@<alias> "
    "(or models:/<name>/<version>) from the MLflow model registry"
)
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class IncompatibleAdapterError(UserInputError):
    """An adapter that does not fit the configured base model."""


def resolve_adapter(spec: str) -> Path:
    """The local folder of an adapter given as a folder path or an MLflow model URI."""
    folder = _registered_folder(spec) if spec.startswith(MODELS_SCHEME) else Path(spec)
    if not folder.is_dir():
        raise AdapterNotFoundError(
            f"adapter {spec!r}: no folder at {str(folder)!r}; give {ACCEPTED}"
        )
    if not (folder / ADAPTER_CONFIG).is_file() and not is_whole_model(folder):
        raise AdapterNotFoundError(
            f"adapter {spec!r}: {str(folder)!r} holds neither {ADAPTER_CONFIG} nor "
            f"{MODEL_CONFIG}; give {ACCEPTED}"
        )
    return folder


def is_whole_model(folder: Path) -> bool:
    """A fully fine-tuned student (loaded as the base) rather than a LoRA adapter."""
    return (folder / MODEL_CONFIG).is_file() and not (folder / ADAPTER_CONFIG).is_file()


def apply_adapter(model: Any, spec: str, *, merge: bool) -> Any:
    """Load the adapter onto `model`; merged into the weights unless the base is quantized.

    Merging removes the LoRA detour from every forward pass; a 4-bit base cannot be merged
    exactly, so it keeps the PEFT wrapper.
    """
    from peft import PeftModel

    folder = resolve_adapter(spec)
    try:
        wrapped = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:
        raise IncompatibleAdapterError(
            f"adapter {spec!r} does not fit the base model ({one_line(e)}); give an adapter "
            "trained on the configured student"
        ) from e
    wrapped.eval()
    return wrapped.merge_and_unload() if merge else wrapped


def registry_uri(model: str, alias: str) -> str:
    return f"{MODELS_SCHEME}{model}@{alias}"


def alias_version(model: str, alias: str) -> int | None:
    """The model version `alias` points at, or None when the model or the alias is missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return int(MlflowClient().get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def serving_adapter(spec: str | None, registered_model: str) -> str | None:
    """What `student.adapter` means for serving: `auto` is the registry's champion when it has
    one (else the base student), `none` (or null) the base student, anything else itself."""
    if spec is None or spec == NO_ADAPTER:
        return None
    if spec != SERVE_CHAMPION:
        return spec
    champion = alias_version(registered_model, CHAMPION)
    return None if champion is None else registry_uri(registered_model, CHAMPION)


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


def champion_pin(spec: str | None, registered_model: str) -> tuple[str | None, int | None]:
    """`serving_adapter` pinned for a service that follows the champion: `auto` becomes
    `models:/<name>/<version>` of the version the alias points at now (the alias may move
    while the weights load; a version cannot), with that version; else (spec, None)."""
    if spec != SERVE_CHAMPION:
        return serving_adapter(spec, registered_model), None
    champion = alias_version(registered_model, CHAMPION)
    return (None, None) if champion is None else (version_uri(registered_model, champion), champion)


def version_uri(model: str, version: int) -> str:
    return f"{MODELS_SCHEME}{model}/{version}"


def describe_adapter(spec: str | None) -> str:
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


def register_adapter(folder: Path, *, name: str, alias: str, artifact_path: str = "adapter") -> int:
    """Log `folder` (adapter or whole model) into the active MLflow run and register it as
    `models:/<name>@<alias>`.

    Returns the new model version. Needs an active run (the SFT flow's run).
    """
    import mlflow
    from mlflow import MlflowClient

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "register_adapter needs an active MLflow run (see mars_core.infra.tracking)"
        )
    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{artifact_path}", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)


def _registered_folder(spec: str) -> Path:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _MODEL_URI.match(spec)
    if match is None:
        raise AdapterNotFoundError(f"adapter {spec!r} is not a model URI we read; give {ACCEPTED}")
    name, alias, version = match["name"], match["alias"], match["version"]
    client = MlflowClient()
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=found.source))
    except MlflowException as e:
        raise AdapterNotFoundError(
            f"adapter {spec!r} not found in the MLflow registry at {mlflow.get_tracking_uri()} "
            f"({one_line(e)}); give {ACCEPTED}"
        ) from e
