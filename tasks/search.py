"""Search tasks: sample requests for the demo, and a batch of requests through the funnel."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import MarsConfig
from mars_core.search.batch import read_requests
from mars_core.search.build import agent_notice, build_funnel
from mars_core.search.samples import sample_requests, write_requests
from mars_core.search.service import run_requests, write_outputs


@task(name="write-demo-requests")
def write_demo_requests(cfg: MarsConfig, path: str) -> str:
    """The configured sample searches as a JSONL requests file."""
    requests = sample_requests(Path(cfg.data.out_dir), cfg.demo.requests)
    return str(write_requests(Path(path), requests))


@task(name="search-batch")
def search_batch(cfg: MarsConfig, requests: str, name: str) -> dict:
    """Load the funnel once, search every request, write `<name>.parquet` and `<name>.html`."""
    specs = read_requests(Path(requests))
    funnel = build_funnel(cfg)
    outcome = run_requests(funnel, specs, max_input_pixels=cfg.funnel.max_input_pixels)
    table, page = write_outputs(
        outcome,
        Path(cfg.paths.reports),
        name=name,
        notice=agent_notice(cfg),
        max_input_pixels=cfg.funnel.max_input_pixels,
    )
    return {
        "results": str(table),
        "report": str(page),
        "searched": len(outcome.results),
        "failed": len(outcome.failed),
    }
