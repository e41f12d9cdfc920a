"""Stage 1, the lexical lock: the query's category restricts, BM25 over its words ranks.

"a blue couch" locks to SOFA: every SOFA product may come back (those with "blue" or "couch"
in their text first) and no product of another category can. A query that names no known
category runs over the whole catalogue and says so (an unlocked `CategoryLock` with its
reason), so the caller can tell the user instead of silently mixing categories.
"""

from __future__ import annotations

import numpy as np

from mars_core.config import IndexConfig
from mars_core.index.lucene import LexicalHits, LuceneIndex
from mars_core.index.store import IndexSnapshot
from mars_core.index.vocabulary import CategoryVocabulary
from mars_core.infra.errors import EmptyQueryError
from mars_core.search.types import Candidate, CategoryLock, SearchRequest, StageOutput


class LexicalStage:
    """BM25 over the catalogue with a category FILTER clause; `name` (its scores' key) comes
    from the stage registry (`mars_core.funnel.stages`)."""

    def __init__(
        self,
        index: LuceneIndex,
        vocabulary: CategoryVocabulary,
        *,
        name: str,
        listing_overfetch: int,
    ) -> None:
        self.index = index
        self.vocabulary = vocabulary
        self.name = name
        self.listing_overfetch = listing_overfetch

    @classmethod
    def open(cls, snapshot: IndexSnapshot, cfg: IndexConfig, *, name: str) -> LexicalStage:
        """Stage 1 over the snapshot's Lucene folder, with BM25 and vocabulary from config."""
        index = LuceneIndex(snapshot.lucene_path, k1=cfg.bm25_k1, b=cfg.bm25_b)
        return cls(
            index,
            CategoryVocabulary(cfg.vocabulary, present=snapshot.manifest.categories),
            name=name,
            listing_overfetch=cfg.listing_overfetch,
        )

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        """The top `k` products for the query; stage 1 always ranks the whole catalogue."""
        if candidates is not None:
            raise ValueError(
                f"{self.name} is the first stage and ranks the whole catalogue; it was given "
                f"{len(candidates)} candidates: pass None"
            )
        match = self.vocabulary.match(request.query)
        terms = self.index.analyze(request.query)
        self._check_terms(request.query, terms, locked=match.category is not None)
        found, positions = self._top_items(terms, match.category, k)
        kept = np.asarray(positions, dtype=np.int64)
        products = found.products.take(kept).to_pylist()
        rows, scores = found.rows[kept].tolist(), found.scores[kept].tolist()
        reason = "" if match.category else f"no known category word in {request.query!r}"
        details = {
            "bm25_query": " ".join(terms),
            "mentions": list(match.mentions),
            "hits": len(kept),
            "fetched": len(found),
            "collapsed_listings": len(found) - len(kept),
        }
        candidates = [
            Candidate(p["key"], p, scores={self.name: score}, row=row)
            for p, score, row in zip(products, scores, rows, strict=True)
        ]
        return StageOutput(candidates, lock=CategoryLock(match.category, reason), details=details)

    def _top_items(
        self, terms: list[str], category: str | None, k: int
    ) -> tuple[LexicalHits, list[int]]:
        """The hits and the positions of the best listing of each of the top `k` items.

        One item sold on several marketplaces is several listings. Only when those cut the
        top `k` short is more fetched (k x `listing_overfetch` more each time), until `k`
        items are found or the index has no more hits.
        """
        fetch = k
        while True:
            found = self.index.search(terms, category=category, k=fetch)
            kept = one_listing_per_item(found.products["item_id"].to_pylist())[:k]
            if len(kept) == k or len(found) < fetch:
                return found, kept
            fetch += k * self.listing_overfetch

    def _check_terms(self, query: str, terms: list[str], *, locked: bool) -> None:
        if not terms and not locked:
            raise EmptyQueryError(
                f"query {query!r} has no searchable words (only stop words or symbols): name "
                "the product, e.g. 'bed' or 'a lamp for the reading corner'"
            )

    def close(self) -> None:
        self.index.close()


def one_listing_per_item(items: list[str]) -> list[int]:
    """Positions of the best-ranked listing of each item (ABO repeats an item per
    marketplace), given the hits' item ids best first."""
    seen: set[str] = set()
    kept = []
    for position, item in enumerate(items):
        if item not in seen:
            seen.add(item)
            kept.append(position)
    return kept
