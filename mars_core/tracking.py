"""MLflow runs in the project's SQLite store, with the composed config logged as params."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Any

import mlflow

from mars_core.runtime import setup_runtime


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists are kept as their string form."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def ensure_experiment(name: str) -> str:
    """The experiment id, creating it with artifacts under mlruns/artifacts if new."""
    runtime = setup_runtime()
    mlflow.set_tracking_uri(runtime.mlflow_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (runtime.mlflow_artifacts / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@contextmanager
def mlflow_run(experiment: str, run_name: str, config: Any = None) -> Iterator[Any]:
    """Start a run (nested under an active one) and log the config's fields as params."""
    experiment_id = ensure_experiment(experiment)
    nested = mlflow.active_run() is not None
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested) as run:
        if config is not None:
            tree = asdict(config) if is_dataclass(config) else dict(config)
            params = {k: str(v)[:500] for k, v in flatten(tree).items()}
            mlflow.log_params(params)
        yield run
