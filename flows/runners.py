"""Where work runs: `pipeline.runner` picks Prefect's task runner for the shards of mining and
labelling (a task run per shard either way, so Prefect shows their progress), and
`run_on_pool` hands a whole flow to the workers of another work pool (SFT on a GPU pool)."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mars_core.config import PipelineConfig
from mars_core.errors import UserInputError


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


def run_on_pool(flow_name: str, pool: str, overrides: list[str]) -> FlowRun:
    """Run `flow_name` as its deployment on work pool `pool` (a worker there picks it up, e.g.
    on a GPU machine) and wait for it; an error naming the run when it does not complete."""
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        )
    if not deployments:
        raise UserInputError(
            f"no deployment of the {flow_name} flow on work pool {pool!r}: create the pool and "
            f"deploy (`prefect work-pool create {pool} --type process`, `prefect deploy --all`)"
        )
    name = f"{flow_name}/{deployments[0].name}"
    run = run_deployment(name, parameters={"overrides": overrides}, timeout=None)
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise RuntimeError(
            f"{name} flow run {run.id} ended {state}; see its logs in the Prefect UI"
        )
    return run
