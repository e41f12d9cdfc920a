"""Beyond the query: what fits instead when nothing asked for does, and a room with no query.

Both ask the agent about categories the query did not name, so both bound what they ask the
same way. The categories come from stage 2 without the agent: the room photo's nearest
products over the whole catalogue, `k1` for each category asked (`k1 x alternative_pool`
overall, LanceDB's nearest-neighbour search: a bounded first cut whatever the catalogue's
size; BM25 has no words to rank by), grouped by category, the categories whose best product
is closest first, at most `funnel.alternative_pool` of them. Each category is asked
by the words a user asks it by (its first vocabulary phrase, the query the student was trained
with for it), its candidates in one batched agent pass over all categories.

* **Alternatives** (a query where nothing fits): one candidate per category, the best of
  stage 2; those the agent scores at or over `funnel.min_fit_score` are offered, best first,
  at most `funnel.alternatives`, each with the agent's reason.
* **A room with no query**: `funnel.per_category` candidates per category; the fits are
  returned grouped by category, the categories in the order of their best agent score.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from mars_core.config import FunnelConfig, VocabularyConfig
from mars_core.index.vocabulary import category_query
from mars_core.search.funnel import Alternative, SearchResult
from mars_core.search.types import Candidate, CategoryLock, SearchRequest

if TYPE_CHECKING:  # imported by their stages' factories: naming stages loads neither
    from mars_core.agent.stage import AgentStage
    from mars_core.search.visual import VisualStage

ROOM_ONLY_REASON = "no query: the categories closest to the room photo were searched"


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
        pool = self._closest_categories(request.room, exclude=sorted(asked), per_category=1)
        asks = [(category_query(category, self.vocabulary), found) for category, found in pool]
        result.skipped += self.agent.judge(request.room, asks)
        fits = sorted(
            (
                (query, found[0])
                for query, found in asks
                if found and found[0].scores.get(self.agent.name, 0.0) >= self.funnel.min_fit_score
            ),
            key=lambda ask: -ask[1].scores[self.agent.name],
        )[: self.funnel.alternatives]
        self.agent.explain(request.room, [(query, [candidate]) for query, candidate in fits])
        result.alternatives = [
            Alternative(str(candidate.product.get("category")), query, candidate)
            for query, candidate in fits
        ]
        result.details["alternatives"] = {
            "categories_asked": len(pool),
            "scored": sum(self.agent.name in c.scores for _, found in asks for c in found),
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
        pool = self._closest_categories(
            request.room, exclude=[], per_category=self.funnel.per_category
        )
        result.timings[self.visual.name] = time.perf_counter() - started
        started = time.perf_counter()
        asks = [(category_query(category, self.vocabulary), found) for category, found in pool]
        result.skipped += self.agent.judge(request.room, asks)
        judge = self.agent.name
        groups = ranked_groups([found for _, found in asks], judge)
        fitting = [
            [c for c in group if c.scores[judge] >= self.funnel.min_fit_score] for group in groups
        ]
        shown = [group for group in fitting if group] or groups
        result.nothing_fits = bool(groups) and not any(fitting)
        queries = {found[0].product.get("category"): query for query, found in asks if found}
        self.agent.explain(
            request.room, [(queries[group[0].product.get("category")], group) for group in shown]
        )
        result.results = [candidate for group in shown for candidate in group]
        result.timings[self.agent.name] = time.perf_counter() - started
        result.details[self.agent.name] = {
            "categories_asked": len(pool),
            "scored": sum(len(group) for group in groups),
            "categories_shown": len(shown),
        }
        return result

    @property
    def first_cut(self) -> int:
        """The room's nearest products among which categories are chosen: `k1` for each
        category asked (`k1 x alternative_pool` overall), whatever the catalogue's size."""
        return self.funnel.k1 * self.funnel.alternative_pool

    def _closest_categories(
        self, room: Image.Image, *, exclude: list[str], per_category: int
    ) -> list[tuple[str, list[Candidate]]]:
        """Up to `alternative_pool` categories among the room's `first_cut` nearest products
        (none of `exclude`), closest best product first, each with its `per_category` closest."""
        with self.visual_lock:
            vector = self.visual.room_vector(room)
            nearest = self.visual.nearest(vector, self.first_cut * self.overfetch, exclude=exclude)
        if self.keep is not None:
            nearest = [c for c in nearest if c.key in self.keep][: self.first_cut]
        by_category: dict[str, list[Candidate]] = {}
        seen: set[str] = set()
        for candidate in nearest:  # closest first
            item = str(candidate.product.get("item_id") or candidate.key)
            group = by_category.setdefault(str(candidate.product.get("category")), [])
            if item not in seen and len(group) < per_category:
                seen.add(item)
                group.append(candidate)
        return list(by_category.items())[: self.funnel.alternative_pool]


def ranked_groups(groups: list[list[Candidate]], judge: str) -> list[list[Candidate]]:
    """Each group best `judge` (the agent's) score first, the groups in the order of their best;
    unscored candidates (an image that could not be loaded) left out."""
    scored = [
        sorted((c for c in group if judge in c.scores), key=lambda c: -c.scores[judge])
        for group in groups
    ]
    return sorted((g for g in scored if g), key=lambda group: -group[0].scores[judge])
