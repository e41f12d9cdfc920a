"""Inference flow: a file of (room photo, query) requests → a results table and an HTML page.

`python -m flows.inference requests.jsonl [hydra overrides...]`; the requests file is CSV
(header `room,query[,room_id]`) or JSONL with those fields; room paths are relative to it
and must stay inside its folder or `funnel.request_roots`.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["inference"])  # the program: answers --help before the imports below

from pathlib import Path

import mlflow
from prefect import flow

from mars_core.app.batch_search import SearchReport
from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.config import MarsConfig
from mars_core.infra.tracking import mlflow_run
from mars_core.search.batch import read_requests
from tasks.flow_process import prepare_flow_process
from tasks.search import search_batch


@flow(name="inference")
def inference(
    requests: str, overrides: list[str] | None = None, out_dir: str | None = None
) -> SearchReport:
    """Search every request; write `<requests stem>.parquet/.html` into `out_dir` (default
    `paths.reports`); log counts, latencies and both outputs to MLflow."""
    overrides = list(overrides or [])
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "inference", cfg, overrides):
        out = search_batch(cfg, requests, out_dir)
        mlflow.log_metrics(out.metrics())
        mlflow.log_artifact(out.page)
        mlflow.log_artifact(out.results)
    return out


def check_inputs(cfg: MarsConfig, requests: Path) -> None:
    """The requests file, the catalogue and the index are there before the flow starts (one
    error line); the index's parts are checked where the search opens it."""
    read_requests(requests, cfg.funnel.request_roots)
    require_inputs(cfg, "search")


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.inference REQUESTS [hydra overrides...]`"""
    run_app(APPS["inference"], argv, _run)


def _run(call: Invocation) -> None:
    requests = Path(call.options["requests"])
    cfg = call.cfg
    check_inputs(cfg, requests)
    prepare_flow_process(cfg, debug=call.debug)
    print(f"\n{inference(str(requests), call.overrides).summary()}")


if __name__ == "__main__":
    main()
