"""Where whole flows run: `run_on_pool` hands a flow to the workers of another work pool (SFT
on a GPU pool). Mapped shards pick their task runner in tasks.shards."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from mars_core.infra.errors import UserInputError


def run_on_pool(flow_name: str, pool: str, overrides: list[str], **parameters: object) -> FlowRun:
    """Run `flow_name` as its deployment on work pool `pool` (a worker there picks it up, e.g.
    on a GPU machine) with `overrides` and any other of its `parameters`, and wait for it; an
    error naming the run when it does not complete."""
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
    run = run_deployment(name, parameters={"overrides": overrides, **parameters}, timeout=None)
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise RuntimeError(
            f"{name} flow run {run.id} ended {state}; see its logs in the Prefect UI"
        )
    return run
