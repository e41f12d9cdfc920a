"""Run a batch of (room photo, query) requests through a funnel and write what a person reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.io import atomic_write_parquet, atomic_write_text
from mars_core.report import FailedRequest, render_report
from mars_core.search.batch import RequestSpec, results_table
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.types import SearchRequest


@dataclass
class BatchOutcome:
    """Results in request order, and the requests that could not run with their reasons."""

    results: list[tuple[int, SearchResult]]
    failed: list[FailedRequest]


def run_requests(
    funnel: SearchFunnel, specs: list[RequestSpec], *, max_input_pixels: int
) -> BatchOutcome:
    """Search each request; a bad room photo or query fails that request alone, by name."""
    outcome = BatchOutcome(results=[], failed=[])
    for spec in tqdm(specs, desc="search", unit="request", disable=len(specs) < 2):
        try:
            room = load_image(spec.room, max_input_pixels)
            request = SearchRequest(room=room, query=spec.query, room_id=spec.room_id)
            outcome.results.append((spec.line, funnel.search(request)))
        except UserInputError as e:
            outcome.failed.append(
                FailedRequest(room=str(spec.room), query=spec.query, reason=str(e))
            )
    return outcome


def write_outputs(
    outcome: BatchOutcome, out_dir: Path, *, name: str, notice: str | None, max_input_pixels: int
) -> tuple[Path, Path]:
    """`<name>.parquet` (one row per ranked product) and `<name>.html` (the page)."""
    table = atomic_write_parquet(out_dir / f"{name}.parquet", results_table(outcome.results))
    page = render_report(
        [result for _, result in outcome.results],
        title=f"MARS search results — {name}",
        notice=notice,
        failed=outcome.failed,
        max_pixels=max_input_pixels,
    )
    return table, atomic_write_text(out_dir / f"{name}.html", page)
