"""Run (room photo, query) requests through the funnel and write what a person reads.

One code path for the `search` command line (one request) and the inference flow (a file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mars_core.config import MarsConfig
from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.io import atomic_write_parquet, atomic_write_text
from mars_core.report import render_report
from mars_core.search.batch import (
    FailedRequest,
    RequestsFile,
    RequestSpec,
    read_requests,
    results_table,
)
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import SearchRequest
from mars_core.stages import agent_notice, build_funnel


@dataclass
class SearchReport:
    """What a batch search wrote and how many requests ran: what the inference flow logs."""

    results: str  # the results table (parquet)
    page: str  # the HTML page
    searched: int
    failed: int

    def metrics(self) -> dict[str, float]:
        return {"searched": float(self.searched), "failed": float(self.failed)}


@dataclass
class BatchOutcome:
    """Results in request order, the requests that could not run, and the files written."""

    results: list[tuple[int, SearchResult]]
    failed: list[FailedRequest]
    table: Path | None = None
    page: Path | None = None
    notice: str | None = field(default=None)

    def report(self) -> SearchReport:
        """The counts and file paths, without the results' images."""
        return SearchReport(
            results=str(self.table),
            page=str(self.page),
            searched=len(self.results),
            failed=len(self.failed),
        )


def run_requests(
    funnel: SearchFunnel, specs: list[RequestSpec], *, max_image_pixels: int
) -> BatchOutcome:
    """Search each request; a bad room photo or query fails that request alone, by name."""
    outcome = BatchOutcome(results=[], failed=[])
    for spec in tqdm(specs, desc="search", unit="request", disable=len(specs) < 2):
        try:
            room = load_image(spec.room, max_image_pixels)
            request = SearchRequest(room=room, query=spec.query, room_id=spec.room_id)
            outcome.results.append((spec.line, funnel.search(request)))
        except UserInputError as e:
            outcome.failed.append(
                FailedRequest(room=str(spec.room), query=spec.query, reason=str(e))
            )
    return outcome


def write_outputs(
    outcome: BatchOutcome, out_dir: Path, *, name: str, max_image_pixels: int
) -> BatchOutcome:
    """`<name>.parquet` (one row per ranked product) and `<name>.html` (the page)."""
    outcome.table = atomic_write_parquet(
        out_dir / f"{name}.parquet", results_table(outcome.results)
    )
    page = render_report(
        [result for _, result in outcome.results],
        title=f"MARS search results — {name}",
        notice=outcome.notice,
        failed=outcome.failed,
        max_pixels=max_image_pixels,
    )
    outcome.page = atomic_write_text(out_dir / f"{name}.html", page)
    return outcome


def search_requests(cfg: MarsConfig, requests: RequestsFile, *, name: str) -> BatchOutcome:
    """Load the configured funnel once, search every request, write both outputs."""
    with build_funnel(cfg) as funnel:
        outcome = run_requests(funnel, requests.specs, max_image_pixels=cfg.data.max_image_pixels)
    outcome.failed[:0] = [
        FailedRequest(room=f"line {line}", query="", reason=reason)
        for line, reason in requests.bad_lines
    ]
    outcome.notice = agent_notice(cfg)
    return write_outputs(
        outcome, Path(cfg.paths.reports), name=name, max_image_pixels=cfg.data.max_image_pixels
    )


def search_file(cfg: MarsConfig, path: Path, *, name: str) -> BatchOutcome:
    """`search_requests` over a CSV/JSONL requests file."""
    return search_requests(cfg, read_requests(path), name=name)
