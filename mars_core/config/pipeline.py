"""Config of the pipeline flow (`python -m flows.pipeline`): the whole DAG as one flow."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob

RUNNERS = ("default", "dask")


@dataclass
class PipelineConfig:
    """The whole DAG as one flow (`python -m flows.pipeline`)."""

    refresh: bool = knob(False, "re-run every step even when its inputs are unchanged")
    runner: str = knob(
        "default",
        "task runner of the mapped steps (re-index embedding, mining and labelling shards): "
        "default (threads in the flow's process) or dask (prefect-dask: an existing cluster or "
        "a local one)",
        choices=RUNNERS,
    )
    dask_address: str | None = knob(
        None, "runner=dask: address of an existing Dask scheduler (tcp://host:8786); null: local"
    )
    dask_workers: int = knob(
        2, "runner=dask without an address: workers of the local cluster", ge=1
    )
    train_work_pool: str | None = knob(
        None,
        "run the train step as the train flow's deployment on this Prefect work pool (the GPU "
        "pool, `mars-gpu` in prefect.yaml) and wait for it; null: in the pipeline's process",
    )

    prefect_start_timeout_s: float = knob(
        120.0,
        "seconds a flow command waits for Prefect's temporary API server to start (tried twice); "
        "raise it on a busy machine",
        gt=0,
    )

    def __post_init__(self) -> None:
        check_knobs(self, "pipeline")
        if self.dask_address and self.runner != "dask":
            raise ValueError("pipeline.dask_address is set: set pipeline.runner=dask too")
