"""Mapped shards: `pipeline.runner` picks Prefect's task runner for the shards of re-index
embedding, mining and labelling (a task run per shard either way, so Prefect shows their
progress), and a worker loads each model once for all the shards it runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prefect import Task
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mars_core.config import EmbedderConfig, PipelineConfig
from mars_core.vision.embedder import Embedder

_LOADED: dict[str, Embedder] = {}
_LOADING = threading.Lock()


def shard_runner(cfg: PipelineConfig) -> TaskRunner:
    """Threads in the flow's process by default; with `runner=dask`, the Dask cluster at
    `dask_address`, else a local one of `dask_workers` in-process workers (worker processes
    would each start a Prefect API of their own when no server is configured)."""
    if cfg.runner == "default":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": cfg.dask_workers,
            "processes": False,
            "dashboard_address": None,
        }
    )


def iter_shards(cfg: PipelineConfig, task: Task, parameters: dict[str, Any]) -> Iterator[Any]:
    """`task` once per element of the iterable parameters (`unmapped` ones shared), all
    submitted at once to the configured runner; yields the results in order, each as soon as
    it and those before it are done."""
    with shard_runner(cfg) as runner:
        for future in runner.map(task, parameters):
            yield future.result()


def map_shards(cfg: PipelineConfig, task: Task, parameters: dict[str, Any]) -> list[Any]:
    """`iter_shards`, all results in order."""
    return list(iter_shards(cfg, task, parameters))


def embedder_for(cfg: EmbedderConfig, models_dir: str, max_image_pixels: int) -> Embedder:
    """One loaded embedder per worker process and config, shared by the shards it runs
    (loading SigLIP-so400m per shard would cost more than the shard's work)."""
    key = json.dumps([asdict(cfg), models_dir, max_image_pixels], sort_keys=True, default=str)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = Embedder.from_config(cfg, models_dir, max_image_pixels=max_image_pixels)
        return _LOADED[key]
