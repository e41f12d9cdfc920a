"""Run (room photo, query) requests through the funnel and write what a person reads.

One code path for the `search` command line (one request) and the inference flow (a file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import mean

import numpy as np
from tqdm import tqdm

from mars_core.app.results_page import render_report
from mars_core.config import MarsConfig
from mars_core.funnel.stages import agent_notice, build_funnel, known_stages
from mars_core.infra.errors import UserInputError, printable
from mars_core.infra.io import atomic_write_parquet, atomic_write_text
from mars_core.infra.runtime import bar_disable, is_verbose
from mars_core.search.batch import (
    FailedRequest,
    RequestsFile,
    RequestSpec,
    read_requests,
    results_table,
)
from mars_core.search.funnel import SearchFunnel, SearchResult
from mars_core.search.query import check_query
from mars_core.search.types import SearchRequest
from mars_core.vision.images import load_image

BAR_MIN_REQUESTS = 10  # a batch this long shows a progress bar (shorter ones only with -v)
RUN_FOLDER_ATTEMPTS = 100


@dataclass
class SearchReport:
    """What a batch search wrote and how it went: what the inference flow logs and prints."""

    results: str  # the results table (parquet)
    page: str  # the HTML page
    searched: int
    failed: int
    problems: list[str] = field(default_factory=list)  # "request N ...: why", failed or empty
    latency_ms: dict[str, float] = field(default_factory=dict)  # "<stage>.p50"/".p95" in ms
    hits_per_request: float = 0.0
    nothing_fits: int = 0  # requests where the agent says nothing in the catalogue fits
    no_hits: int = 0  # requests with an empty list
    replaced: bool = False  # the files existed before this run and were replaced

    def metrics(self) -> dict[str, float]:
        latency = {f"latency_ms.{name}": value for name, value in self.latency_ms.items()}
        return latency | {
            "searched": float(self.searched),
            "failed": float(self.failed),
            "hits_per_request": self.hits_per_request,
            "nothing_fits": float(self.nothing_fits),
            "no_hits": float(self.no_hits),
        }

    def summary(self) -> str:
        """What a person reads at the end: counts, each request that failed or found nothing,
        then the files (last, so the line that matters ends the output)."""
        lines = [f"{self.searched} searched, {self.failed} failed"]
        lines += [f"  {problem}" for problem in self.problems]
        if self.replaced:
            lines.append("  (replaced the previous results of this requests file)")
        lines += [f"results: {self.results}", f"page:    {self.page}"]
        return printable("\n".join(lines))


@dataclass
class BatchOutcome:
    """Results in request order, the requests that could not run, and the files written."""

    results: list[tuple[int, SearchResult]]
    failed: list[FailedRequest]
    table: Path | None = None
    page: Path | None = None
    notice: str | None = field(default=None)

    replaced: bool = False

    def report(self) -> SearchReport:
        """The counts, latencies and file paths, without the results' images."""
        results = [result for _, result in self.results]
        problems = sorted(
            [
                (f.request, f"request {f.request} ({f.room}, {f.query!r}) failed: {f.reason}")
                for f in self.failed
            ]
            + [
                (number, f"request {number} ({result.request.room_id}): {result.message}")
                for number, result in self.results
                if not result.results
            ]
        )
        return SearchReport(
            results=str(self.table),
            page=str(self.page),
            searched=len(self.results),
            failed=len(self.failed),
            problems=[text for _, text in problems],
            latency_ms=stage_latency_ms(results),
            hits_per_request=mean([len(r.results) for r in results]) if results else 0.0,
            nothing_fits=sum(r.nothing_fits for r in results),
            no_hits=sum(not r.results for r in results),
            replaced=self.replaced,
        )


def stage_latency_ms(results: list[SearchResult]) -> dict[str, float]:
    """Per-stage p50 and p95 latency in milliseconds over the requests that ran the stage."""
    by_stage: dict[str, list[float]] = {}
    for result in results:
        for stage, seconds in result.timings.items():
            by_stage.setdefault(stage, []).append(seconds * 1000.0)
    latency: dict[str, float] = {}
    for stage, values in by_stage.items():
        latency[f"{stage}.p50"] = float(np.percentile(values, 50))
        latency[f"{stage}.p95"] = float(np.percentile(values, 95))
    return latency


def run_requests(
    funnel: SearchFunnel, specs: list[RequestSpec], *, max_image_pixels: int
) -> BatchOutcome:
    """Search each request; a bad room photo or query fails that request alone, by name."""
    outcome = BatchOutcome(results=[], failed=[])
    quiet = len(specs) < BAR_MIN_REQUESTS and not is_verbose()
    for spec in tqdm(specs, desc="search", unit="request", disable=bar_disable(quiet)):
        try:
            room = load_image(spec.room, max_image_pixels)
            request = SearchRequest(room=room, query=spec.query, room_id=spec.room_id)
            outcome.results.append((spec.line, funnel.search(request)))
        except UserInputError as e:
            outcome.failed.append(
                FailedRequest(
                    room=str(spec.room), query=spec.query, reason=str(e), request=spec.line
                )
            )
    return outcome


def split_by_query_limits(
    specs: list[RequestSpec], cfg: MarsConfig
) -> tuple[list[RequestSpec], list[FailedRequest]]:
    """The requests whose query passes `check_query`, and the others as failed requests
    (their query cut to the limit, so a huge one is not copied into every report)."""
    runnable: list[RequestSpec] = []
    refused: list[FailedRequest] = []
    for spec in specs:
        try:
            check_query(spec.query, cfg.funnel)
        except UserInputError as e:
            query = spec.query[: cfg.funnel.max_query_chars]
            refused.append(FailedRequest(str(spec.room), query, str(e), request=spec.line))
            continue
        runnable.append(spec)
    return runnable, refused


def write_outputs(
    outcome: BatchOutcome, out_dir: Path, *, name: str, max_image_pixels: int
) -> BatchOutcome:
    """`<name>.parquet` (one row per ranked product) and `<name>.html` (the page)."""
    outcome.replaced = (out_dir / f"{name}.parquet").exists()
    outcome.table = atomic_write_parquet(
        out_dir / f"{name}.parquet", results_table(outcome.results, known_stages())
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


def search_requests(
    cfg: MarsConfig,
    requests: RequestsFile,
    *,
    name: str,
    out_dir: Path | None = None,
    refused: list[FailedRequest] | None = None,
) -> BatchOutcome:
    """Load the configured funnel once, search every request, write both outputs into
    `out_dir` (default `paths.reports`), with the `refused` requests and the file's bad lines
    among the failed ones. The queries were checked where they came in (the command line,
    `search_file`'s rows): nothing here checks them again."""
    outcome = BatchOutcome(results=[], failed=[])
    if requests.specs:
        with build_funnel(cfg) as funnel:
            outcome = run_requests(
                funnel, requests.specs, max_image_pixels=cfg.data.max_image_pixels
            )
    outcome.failed[:0] = (refused or []) + [
        FailedRequest(room=f"line {line}", query="", reason=reason, request=line)
        for line, reason in requests.bad_lines
    ]
    outcome.failed.sort(key=lambda failed: failed.request)
    outcome.notice = agent_notice(cfg)
    return write_outputs(
        outcome,
        out_dir or Path(cfg.paths.reports),
        name=name,
        max_image_pixels=cfg.data.max_image_pixels,
    )


def search_file(
    cfg: MarsConfig, path: Path, *, name: str | None = None, out_dir: Path | None = None
) -> BatchOutcome:
    """`search_requests` over a CSV/JSONL requests file; outputs are named after the file
    (`<stem>.parquet`, `<stem>.html`), so batches from different files never overwrite. Each
    row's query is checked here, where it comes in: one over the limits is refused before the
    models load and the others run."""
    requests = read_requests(path, cfg.funnel.request_roots)
    runnable, refused = split_by_query_limits(requests.specs, cfg)
    return search_requests(
        cfg,
        RequestsFile(runnable, requests.bad_lines),
        name=name or path.stem,
        out_dir=out_dir,
        refused=refused,
    )


def run_folder(root: Path, kind: str) -> Path:
    """A new folder `<root>/<kind>/<timestamp>` of its own for one run's outputs, so a search
    or a demo never replaces the last one's."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(RUN_FOLDER_ATTEMPTS):
        folder = root / kind / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{root / kind}: no free run folder for {stamp}")
