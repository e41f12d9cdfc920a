"""MLflow runs in the project's SQLite store, with the composed config logged as params."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from mars_core.infra.runtime import process_alive, setup_runtime

OVERRIDES_TAG = "overrides"
NO_OVERRIDES = "(none)"
CONFIG_ARTIFACT = "config.yaml"
# Which process owns a run: a run still RUNNING whose process is gone was killed.
PID_TAG = "mars.pid"
HOST_TAG = "mars.host"
STALE_TAG = "mars.stale"
STALE_SWEEP_LIMIT = 1000  # RUNNING runs looked at per sweep
STORE_LOCK = ".store.lock"  # beside the store: held while a process first touches it


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
    """The experiment id, creating it with artifacts under mlruns/artifacts if new.

    A new store is created (and its schema migrated) by the first process that touches it;
    several flows a worker starts at once would each migrate it and break one another, so
    the first touch holds a lock beside the store."""
    runtime = setup_runtime()
    mlflow.set_tracking_uri(runtime.mlflow_uri)
    with _store_lock(runtime.mlflow_artifacts.parent / STORE_LOCK):
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = (runtime.mlflow_artifacts / name).as_uri()
        return mlflow.create_experiment(name, artifact_location=location)


@contextmanager
def _store_lock(path: Path) -> Iterator[None]:
    """One process at a time (blocking) past this point, on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fail_stale_runs(experiment_id: str) -> list[str]:
    """Mark failed the runs of the experiment left RUNNING by a process of this machine that
    no longer exists (killed), saying so in the tag `mars.stale`; their ids."""
    client = MlflowClient()
    running = client.search_runs(
        [experiment_id],
        filter_string="attributes.status = 'RUNNING'",
        max_results=STALE_SWEEP_LIMIT,
    )
    host = socket.gethostname()
    stale = []
    for run in running:
        pid = run.data.tags.get(PID_TAG, "")
        if run.data.tags.get(HOST_TAG) == host and pid.isdigit() and not process_alive(int(pid)):
            client.set_tag(run.info.run_id, STALE_TAG, f"process {pid} ended without closing it")
            client.set_terminated(run.info.run_id, status="FAILED")
            stale.append(run.info.run_id)
    return stale


@contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    config: Any = None,
    overrides: list[str] | None = None,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Start a run (nested under an active one, or under `parent_run_id`: a run of another
    process, such as a sweep's); log the config's fields as params, the whole composed config
    as `config.yaml` and the command line's Hydra overrides as the tag `overrides`, so two
    runs can be compared by what was asked, not only by every value. Runs a killed process
    left RUNNING are marked failed first (`fail_stale_runs`)."""
    experiment_id = ensure_experiment(experiment)
    fail_stale_runs(experiment_id)
    nested = mlflow.active_run() is not None
    owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), **(tags or {})}
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        nested=nested,
        parent_run_id=None if nested else parent_run_id,
        tags=owner,
    ) as run:
        if overrides is not None:
            mlflow.set_tag(OVERRIDES_TAG, " ".join(overrides) or NO_OVERRIDES)
        if config is not None:
            tree = asdict(config) if is_dataclass(config) else dict(config)
            params = {k: str(v)[:500] for k, v in flatten(tree).items()}
            mlflow.log_params(params)
            mlflow.log_dict(tree, CONFIG_ARTIFACT)
        yield run


def log_to_run(run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
    """Metrics and tags onto an existing run (a student's, measured again later): the newest
    value of a metric is the one the UI shows, its history keeps the earlier ones."""
    client = MlflowClient()
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def run_tagged(experiment: str, tag: str, value: str) -> Any | None:
    """The run of `experiment` whose tag `tag` is `value` (the newest), or None."""
    experiment_id = ensure_experiment(experiment)
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1
    )
    return runs[0] if runs else None


def rename_run(run_id: str, name: str) -> None:
    MlflowClient().set_tag(run_id, "mlflow.runName", name)
