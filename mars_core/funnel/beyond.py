"""Beyond the query: what fits instead when nothing asked for does, and a room with no query.

Both ask the agent about categories the query did not name, and both spend one per-request
budget of agent candidates (`funnel.beyond_budget`) the same way. The categories come from
stage 2 without the agent: the room photo's nearest products over the whole catalogue, `k1`
for each category asked (`k1 x alternative_pool` overall, LanceDB's nearest-neighbour search:
a bounded first cut whatever the catalogue's size; BM25 has no words to rank by), grouped by
category, the categories whose best product is closest first, at most
`funnel.alternative_pool` of them. The budget goes to those categories' closest candidates
first, then to candidates picked for diversity, not only closeness (`budget.py`): where a
category's closest products are look-alike misfits (indoor chairs by a pool), its fitting
variant (a patio chair) is still asked about. Each category is asked by the words a user asks
it by (its first vocabulary phrase, the query the student was trained with for it); all the
candidates go through the agent in one batched pass, each category's on its room prefix
(system text, room photo and its words, encoded once per category).

A category is judged on every candidate asked: its best agent score decides.

* **Alternatives** (a query where nothing fits): the categories whose best candidate the agent
  scores at or over `funnel.min_fit_score` are offered with that candidate, best first, at
  most `funnel.alternatives`, each with the agent's reason.
* **A room with no query**: each category's fits, at most `funnel.per_category`, grouped by
  category, the categories in the order of their best agent score, each category's best with
  the agent's reason (one a category: the others' would say the same). Nothing fits is said
  only when no candidate asked reaches the bar; then the closest options are shown by
  category.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mars_core.config import FunnelConfig, VocabularyConfig
from mars_core.funnel.budget import Category, Likeness, allocate
from mars_core.index.vocabulary import category_query
from mars_core.search.funnel import Alternative, SearchResult
from mars_core.search.types import Candidate, CategoryLock, SearchRequest

if TYPE_CHECKING:  # imported by their stages' factories: naming stages loads neither
    from mars_core.agent.stage import AgentStage
    from mars_core.search.visual import VisualStage

ROOM_ONLY_REASON = "no query: the categories closest to the room photo were searched"


# A category's query words and the candidates the agent is asked about for it, in pick order.
Ask = tuple[str, list[Candidate]]


@dataclass
class BeyondTheQuery:
    """Alternatives and room-only search over the funnel's stage 2 and agent (a
    `search.funnel.BeyondQuery`)."""

    visual: VisualStage
    agent: AgentStage
    funnel: FunnelConfig
    vocabulary: VocabularyConfig
    # held around stage 2's calls: a service runs its retrieval stages one request at a time
    visual_lock: AbstractContextManager = field(default_factory=nullcontext)
    # an evaluation's held-out products: only these are asked about (fetching `overfetch`
    # times more nearest products to keep `k1` of them), as its stage 1 keeps only these
    keep: frozenset[str] | None = None
    overfetch: int = 1

    def alternatives(self, result: SearchResult) -> None:
        """Other categories that fit the room, for a result where nothing fits."""
        if self.funnel.alternatives == 0:
            return
        started = time.perf_counter()
        request = result.request
        asked = {str(c.product.get("category")) for c in result.results}
        if result.lock is not None and result.lock.category:
            asked.add(result.lock.category)
        asks = self._asks(request.room, exclude=sorted(asked))
        result.skipped += self.agent.judge(request.room, asks)
        fits = [
            (query, group[0])
            for query, group in ranked_asks(asks, self.agent.name)
            if group[0].scores[self.agent.name] >= self.funnel.min_fit_score
        ][: self.funnel.alternatives]
        self.agent.explain(request.room, [(query, [candidate]) for query, candidate in fits])
        result.alternatives = [
            Alternative(str(candidate.product.get("category")), query, candidate)
            for query, candidate in fits
        ]
        result.details["alternatives"] = self._spent(asks) | {
            "offered": len(fits),
            "seconds": time.perf_counter() - started,  # stage 2's search and the agent's
        }

    def search_room(self, request: SearchRequest) -> SearchResult:
        """The fitting products of a room with no query, grouped by category."""
        result = SearchResult(
            request=request,
            results=[],
            stages_run=[self.visual.name, self.agent.name],
            timings={},
            lock=CategoryLock(None, ROOM_ONLY_REASON),
            ranked_by=f"{self.agent.student}; agent score within each category",
        )
        started = time.perf_counter()
        asks = self._asks(request.room, exclude=[])
        result.timings[self.visual.name] = time.perf_counter() - started
        started = time.perf_counter()
        result.skipped += self.agent.judge(request.room, asks)
        ranked = ranked_asks(asks, self.agent.name)
        judge, bar = self.agent.name, self.funnel.min_fit_score
        fitting = [(query, [c for c in group if c.scores[judge] >= bar]) for query, group in ranked]
        shown = [(query, found[: self.funnel.per_category]) for query, found in fitting if found]
        result.nothing_fits = bool(ranked) and not shown
        if result.nothing_fits:  # the closest options, by category
            shown = [(query, group[: self.funnel.per_category]) for query, group in ranked]
        self.agent.explain(request.room, [(query, group[:1]) for query, group in shown])
        result.results = [candidate for _, group in shown for candidate in group]
        result.timings[self.agent.name] = time.perf_counter() - started
        result.details[self.agent.name] = self._spent(asks) | {"categories_shown": len(shown)}
        return result

    @property
    def first_cut(self) -> int:
        """The room's nearest products among which categories are chosen: `k1` for each
        category asked (`k1 x alternative_pool` overall), whatever the catalogue's size."""
        return self.funnel.k1 * self.funnel.alternative_pool

    def _spent(self, asks: list[Ask]) -> dict[str, int]:
        """What a request asked the agent: categories, candidates scored, and its budget."""
        return {
            "categories_asked": len(asks),
            "scored": sum(self.agent.name in c.scores for _, found in asks for c in found),
            "budget": self.funnel.beyond_budget,
        }

    def _asks(self, room: Image.Image, *, exclude: list[str]) -> list[Ask]:
        """The categories asked about (none of `exclude`) and their candidates, the budget
        spent over them for diversity (`budget.allocate`)."""
        pool = self._closest_categories(room, exclude=exclude)
        choices = [self._choice(found) for _, found in pool]
        picks = allocate(choices, self.funnel.beyond_budget, self.funnel.beyond_diversity)
        return [
            (category_query(category, self.vocabulary), [found[i] for i in picked])
            for (category, found), picked in zip(pool, picks, strict=True)
            if picked
        ]

    def _choice(self, found: list[Candidate]) -> Category:
        """A category's candidates (closest first) for the budget: their closeness to the
        room and how alike they look and read (`funnel.beyond_listing_weight`)."""
        with self.visual_lock:  # stage 2's vectors
            rows = self.visual.vectors.rows([c.key for c in found], [c.row for c in found])
            vectors = self.visual.vectors.gather(rows)
        likeness = Likeness.of(
            vectors,
            [str(c.product.get("search_text") or c.product.get("name") or "") for c in found],
            self.funnel.beyond_listing_weight,
        )
        return Category(np.array([c.scores[self.visual.name] for c in found]), likeness)

    def _closest_categories(
        self, room: Image.Image, *, exclude: list[str]
    ) -> list[tuple[str, list[Candidate]]]:
        """Up to `alternative_pool` categories among the room's `first_cut` nearest products
        (none of `exclude`), closest best product first, each with all its products there,
        closest first, one listing per item."""
        with self.visual_lock:
            vector = self.visual.room_vector(room)
            nearest = self.visual.nearest(vector, self.first_cut * self.overfetch, exclude=exclude)
        if self.keep is not None:
            nearest = [c for c in nearest if c.key in self.keep][: self.first_cut]
        by_category: dict[str, list[Candidate]] = {}
        seen: set[str] = set()
        for candidate in nearest:  # closest first
            item = str(candidate.product.get("item_id") or candidate.key)
            if item not in seen:
                seen.add(item)
                by_category.setdefault(str(candidate.product.get("category")), []).append(candidate)
        return list(by_category.items())[: self.funnel.alternative_pool]


def ranked_asks(asks: list[Ask], judge: str) -> list[Ask]:
    """Each category's candidates best `judge` (the agent's) score first (ties: in pick
    order), the categories in the order of their best; unscored candidates (an image that
    could not be loaded) left out, and a category left with none."""
    scored = [
        (query, sorted((c for c in found if judge in c.scores), key=lambda c: -c.scores[judge]))
        for query, found in asks
    ]
    return sorted(
        ((query, group) for query, group in scored if group),
        key=lambda ask: -ask[1][0].scores[judge],
    )
