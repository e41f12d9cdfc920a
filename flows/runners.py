"""Where the mapped steps run: `pipeline.runner` picks Prefect's task runner for the shards
of mining and labelling (a task run per shard either way, so Prefect shows their progress)."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mars_core.config import PipelineConfig


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


def map_shards(cfg: PipelineConfig, task: Task, parameters: dict[str, Any]) -> list[Any]:
    """`task` once per element of the iterable parameters (`unmapped` ones shared), on the
    configured runner; the results in order."""
    with shard_runner(cfg) as runner:
        return [future.result() for future in runner.map(task, parameters)]
