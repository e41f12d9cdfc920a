"""Inference flow: a file of (room photo, query) requests → a results table and an HTML page.

`python -m flows.inference requests.jsonl [hydra overrides...]`; the requests file is CSV
(header `room,query[,room_id]`) or JSONL with those fields; room paths are relative to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
from prefect import flow

from mars_core.cli import run_cli
from mars_core.compose import load_config
from mars_core.search.batch import read_requests
from mars_core.search_service import SearchReport
from mars_core.tracking import mlflow_run
from tasks.search import search_batch


@flow(name="inference")
def inference(
    requests: str, overrides: list[str] | None = None, name: str = "inference"
) -> SearchReport:
    """Search every request; log counts and both outputs to MLflow."""
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "inference", cfg):
        out = search_batch(cfg, requests, name)
        mlflow.log_metrics(out.metrics())
        mlflow.log_artifact(out.page)
        mlflow.log_artifact(out.results)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.inference REQUESTS [hydra overrides...]`"""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: python -m flows.inference REQUESTS.{csv,jsonl} [hydra overrides...]")
    run_cli(lambda: _run(Path(args[0]), args[1:]))


def _run(requests: Path, overrides: list[str]) -> None:
    """Check the config and the file first, so a mistake is one line, not a failed flow run."""
    load_config(overrides)
    read_requests(requests)
    out = inference(str(requests), overrides)
    print(f"\n{out.searched} searched, {out.failed} failed")
    print(f"results: {out.results}\nreport:  {out.page}")


if __name__ == "__main__":
    main()
