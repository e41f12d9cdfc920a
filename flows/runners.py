"""Where whole flows run: `run_on_pool` hands a flow to the workers of another work pool (SFT
on a GPU pool) and waits; `submit_to_pool` hands several over at once (a sweep's jobs, which
a pool of several workers trains in parallel) and `wait_for` collects them. Mapped shards pick
their task runner in tasks.shards."""

from __future__ import annotations

import time

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

POLL_S = 2.0


def run_on_pool(flow_name: str, pool: str, overrides: list[str], **parameters: object) -> FlowRun:
    """Run `flow_name` as its deployment on work pool `pool` (a worker there picks it up, e.g.
    on a GPU machine) with `overrides` and any other of its `parameters`, and wait for it; an
    error naming the run when it does not complete."""
    name = deployment_on(flow_name, pool)
    run = run_deployment(name, parameters={"overrides": overrides, **parameters}, timeout=None)
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise RuntimeError(
            f"{name} flow run {run.id} ended {state}; see its logs in the Prefect UI"
        )
    return run


def submit_to_pool(flow_name: str, pool: str, parameters: dict[str, object]) -> FlowRun:
    """A run of `flow_name`'s deployment on `pool`, scheduled and not waited for (a child of
    the calling flow run)."""
    return run_deployment(deployment_on(flow_name, pool), parameters=parameters, timeout=0)


def wait_for(runs: list[FlowRun]) -> list[FlowRun]:
    """The runs again, each once it has ended (completed, failed, crashed or cancelled)."""
    ended: dict[str, FlowRun] = {}
    with get_client(sync_client=True) as client:
        while len(ended) < len(runs):
            for run in runs:
                if str(run.id) not in ended:
                    now = client.read_flow_run(run.id)
                    if now.state is not None and now.state.is_final():
                        ended[str(run.id)] = now
            if len(ended) < len(runs):
                time.sleep(POLL_S)
    return [ended[str(run.id)] for run in runs]


def deployment_on(flow_name: str, pool: str) -> str:
    """`<flow>/<deployment>` of `flow_name`'s deployment on `pool`; an error naming how to
    make one when there is none."""
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
    return f"{flow_name}/{deployments[0].name}"
