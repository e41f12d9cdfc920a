"""Stage 1, the lexical lock: the query's category restricts, BM25 over its words ranks.

"a blue couch" locks to SOFA: every SOFA product may come back (those with "blue" or "couch"
in their text first) and no product of another category can. A query that names no known
category runs over the whole catalogue and says so (an unlocked `CategoryLock` with its
reason), so the caller can tell the user instead of silently mixing categories.
"""

from __future__ import annotations

from mars_core.config import IndexConfig
from mars_core.errors import EmptyQueryError
from mars_core.index.lucene import LuceneIndex
from mars_core.index.store import IndexSnapshot
from mars_core.index.vocabulary import CategoryVocabulary
from mars_core.search.types import Candidate, CategoryLock, SearchRequest, StageOutput


class LexicalStage:
    """BM25 over the catalogue with a category FILTER clause."""

    name = "bm25"

    def __init__(
        self,
        index: LuceneIndex,
        vocabulary: CategoryVocabulary,
        *,
        listing_overfetch: int,
    ) -> None:
        self.index = index
        self.vocabulary = vocabulary
        self.listing_overfetch = listing_overfetch

    @classmethod
    def open(cls, snapshot: IndexSnapshot, cfg: IndexConfig) -> LexicalStage:
        """Stage 1 over the snapshot's Lucene folder, with BM25 and vocabulary from config."""
        index = LuceneIndex(snapshot.lucene_path, k1=cfg.bm25_k1, b=cfg.bm25_b)
        return cls(
            index,
            CategoryVocabulary(cfg.vocabulary),
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
        # One item sold on several marketplaces is several listings: fetch extra, keep its best.
        found = self.index.search(terms, category=match.category, k=self.listing_overfetch * k)
        unique = one_listing_per_item(found)
        hits = unique[:k]
        reason = "" if match.category else f"no known category word in {request.query!r}"
        details = {
            "bm25_query": " ".join(terms),
            "mentions": list(match.mentions),
            "hits": len(hits),
            "collapsed_listings": len(found) - len(unique),
        }
        return StageOutput(
            [Candidate(h.key, h.product, scores={self.name: h.score}) for h in hits],
            lock=CategoryLock(match.category, reason),
            details=details,
        )

    def _check_terms(self, query: str, terms: list[str], *, locked: bool) -> None:
        if not terms and not locked:
            raise EmptyQueryError(
                f"query {query!r} has no searchable words (only stop words or symbols): name "
                "the product, e.g. 'bed' or 'a lamp for the reading corner'"
            )

    def close(self) -> None:
        self.index.close()


def one_listing_per_item(hits: list) -> list:
    """The best-ranked listing of each item (ABO repeats an item per marketplace)."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        item = hit.product["item_id"]
        if item not in seen:
            seen.add(item)
            kept.append(hit)
    return kept
