"""SearchFunnel: stage 1 → 2 → 3 with per-stage sizes, switches, scores and timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mars_core.config import FunnelConfig
from mars_core.infra.skipped import Skipped
from mars_core.search.query import check_query
from mars_core.search.types import (
    Candidate,
    CategoryLock,
    SearchRequest,
    Stage,
    close_stage,
)

NOTHING_FITS = "Nothing in the catalogue fits this room; closest options:"
NO_PRODUCTS = "The catalogue has no products of category {category}."
NO_MATCH = "no products matched {query!r}; all categories searched"


@dataclass
class FunnelStep:
    """A stage and how many candidates it keeps; `stage=None` is a switched-off stage."""

    stage: Stage | None
    k: int


@dataclass
class SearchResult:
    """The ranked products of one request, with what each stage did and how long it took."""

    request: SearchRequest
    results: list[Candidate]
    stages_run: list[str]
    timings: dict[str, float]  # stage name -> seconds
    lock: CategoryLock | None = None  # None: no stage run picks a category
    skipped: list[Skipped] = field(default_factory=list)  # by every stage, in order
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage name -> details
    ranked_by: str | None = None  # the model behind the agent's ranking, when it ran
    nothing_fits: bool = False

    @property
    def locked(self) -> bool:
        """True when stage 1 kept the search to one category."""
        return self.lock is not None and self.lock.locked

    @property
    def message(self) -> str | None:
        """What to tell the user before the list, when the list is not a list of matches."""
        if not self.results and self.locked:
            return NO_PRODUCTS.format(category=self.lock.category)
        if not self.results:
            return NO_MATCH.format(query=self.request.query)
        return NOTHING_FITS if self.nothing_fits else None


class SearchFunnel:
    """Runs enabled stages in order; a disabled stage only truncates to its size.

    Truncating keeps the next stage's input bounded the same way with or without the
    stage, so an ablation compares orderings, not candidate counts.
    """

    def __init__(
        self,
        steps: list[FunnelStep],
        *,
        final_k: int,
        min_fit_score: float,
        query_limits: FunnelConfig | None = None,
    ) -> None:
        if not steps or steps[0].stage is None:
            raise ValueError("the funnel needs its first stage (BM25) enabled: it picks candidates")
        self.steps = steps
        self.query_limits = query_limits or FunnelConfig()
        self.final_k = final_k
        self.min_fit_score = min_fit_score

    def __enter__(self) -> SearchFunnel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the stages hold open (Lucene readers and their directories)."""
        for step in self.steps:
            close_stage(step.stage)

    def search(self, request: SearchRequest) -> SearchResult:
        """Run the stages in order; a query over the limits is refused before the first."""
        check_query(request.query, self.query_limits)
        candidates: list[Candidate] | None = None
        result = SearchResult(request=request, results=[], stages_run=[], timings={})
        for step in self.steps:
            if step.stage is None:
                candidates = (candidates or [])[: step.k]
                continue
            start = time.perf_counter()
            output = step.stage.rank(request, candidates, step.k)
            result.timings[step.stage.name] = time.perf_counter() - start
            result.stages_run.append(step.stage.name)
            result.lock = output.lock or result.lock
            result.skipped += output.skipped
            result.ranked_by = output.ranked_by or result.ranked_by
            result.details[step.stage.name] = output.details
            candidates = output.candidates
        result.results = (candidates or [])[: self.final_k]
        if "agent" in result.stages_run:
            fit_scores = [c.scores["agent"] for c in result.results]
            result.results, result.nothing_fits = presented(
                result.results, fit_scores, self.min_fit_score
            )
        return result


def presented(
    ranked: list[Candidate], fit_scores: list[float], min_fit_score: float
) -> tuple[list[Candidate], bool]:
    """What a fit judge's list shows, and whether nothing fits: the candidates scored at or over
    `min_fit_score` (a misfit is never presented as a match), or, when none is, all of them as
    the closest options under "nothing fits". Without results, no claim is made."""
    fits = [c for c, score in zip(ranked, fit_scores, strict=True) if score >= min_fit_score]
    if fits or not ranked:
        return fits, False
    return ranked, True
