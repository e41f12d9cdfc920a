"""Search tasks: sample requests for the demo, and a requests file through the funnel."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.app.batch_search import SearchReport, search_file
from mars_core.config import MarsConfig
from mars_core.search.samples import demo_requests_file


@task(name="write-demo-requests")
def write_demo_requests(cfg: MarsConfig, path: str) -> str:
    """The configured sample searches as a JSONL requests file."""
    return str(demo_requests_file(Path(cfg.data.out_dir), cfg.demo.requests, Path(path)))


@task(name="search-batch")
def search_batch(cfg: MarsConfig, requests: str, out_dir: str | None = None) -> SearchReport:
    """Search every request of the file; write `<file stem>.parquet` and `.html` into
    `out_dir` (default `paths.reports`)."""
    folder = Path(out_dir) if out_dir else None
    return search_file(cfg, Path(requests), out_dir=folder).report()
