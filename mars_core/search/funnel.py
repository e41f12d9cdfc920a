"""SearchFunnel: stage 1 → 2 → 3 with per-stage sizes, switches, scores and timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from mars_core.infra.errors import EmptyQueryError
from mars_core.infra.skipped import Skipped
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
NOTHING_FITS_ROOM = "Nothing in the catalogue fits this room; closest options by category:"


@dataclass
class Alternative:
    """A category that fits the room when the asked one does not: its best product (with the
    agent's score and reason) and the words to search it by."""

    category: str
    query: str
    candidate: Candidate


class NoQueryError(EmptyQueryError):
    """A search with no query on a funnel that cannot search a room on its own."""


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
    # when nothing fits: other categories that do, best first (`funnel.alternatives`)
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def room_only(self) -> bool:
        """True for a room with no query: results are grouped by category."""
        return not self.request.query.strip()

    def groups(self) -> list[tuple[str, list[Candidate]]]:
        """The results by category, in the order their categories first appear."""
        grouped: dict[str, list[Candidate]] = {}
        for candidate in self.results:
            grouped.setdefault(str(candidate.product.get("category")), []).append(candidate)
        return list(grouped.items())

    @property
    def locked(self) -> bool:
        """True when stage 1 kept the search to one category."""
        return self.lock is not None and self.lock.locked

    @property
    def message(self) -> str | None:
        """What to tell the user before the list, when the list is not a list of matches."""
        if self.room_only:
            return NOTHING_FITS_ROOM if self.nothing_fits else None
        if not self.results and self.locked:
            return NO_PRODUCTS.format(category=self.lock.category)
        if not self.results:
            return NO_MATCH.format(query=self.request.query)
        return NOTHING_FITS if self.nothing_fits else None


class BeyondQuery(Protocol):
    """What the funnel asks beyond the query's own category (`mars_core.funnel.beyond`): the
    categories that fit when nothing asked for does, and a search of a room with no query."""

    def alternatives(self, result: SearchResult) -> None:
        """Fill `result.alternatives` (and the time it took) for a result where nothing fits."""
        ...

    def search_room(self, request: SearchRequest) -> SearchResult:
        """The best fitting products of a room with no query, grouped by category."""
        ...


class SearchFunnel:
    """Runs enabled stages in order; a disabled stage only truncates to its size.

    Truncating keeps the next stage's input bounded the same way with or without the
    stage, so an ablation compares orderings, not candidate counts. The funnel knows no stage
    by name: a stage that judges fit says when nothing fits (`StageOutput.nothing_fits`).
    """

    def __init__(
        self,
        steps: list[FunnelStep],
        *,
        final_k: int,
        beyond: BeyondQuery | None = None,
        room_search_needs: tuple[str, ...] = (),
    ) -> None:
        if not steps or steps[0].stage is None:
            raise ValueError("the funnel needs its first stage enabled: it picks the candidates")
        self.steps = steps
        self.final_k = final_k
        self.beyond = beyond
        # the stages `beyond` needs, named when a search without a query finds none (registry)
        self.room_search_needs = room_search_needs

    def __enter__(self) -> SearchFunnel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the stages hold open (Lucene readers and their directories)."""
        for step in self.steps:
            close_stage(step.stage)

    def search(self, request: SearchRequest) -> SearchResult:
        """Run the stages in order. A room with no query is searched across categories
        (`BeyondQuery.search_room`); when nothing fits a query, the categories that do are
        offered (`result.alternatives`). The query's size was checked where it came in (the
        command line, a requests file's row, the service's form: `check_query`), once."""
        if not request.query.strip():
            if self.beyond is None:
                needs = " and ".join(self.room_search_needs) or "that search a room"
                raise NoQueryError(
                    f"a search with no query needs stages {needs} (funnel.stages): "
                    "they pick the categories that fit the room photo; name a product instead"
                )
            return self.beyond.search_room(request)
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
            result.nothing_fits = output.nothing_fits or result.nothing_fits
            candidates = output.candidates
        result.results = (candidates or [])[: self.final_k]
        if result.nothing_fits and self.beyond is not None:
            self.beyond.alternatives(result)
        return result
