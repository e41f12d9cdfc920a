"""The funnel's own logic, with small real stages over an in-memory catalogue.

The stages here are deliberately simple real rankers (by a field of the product), so the
funnel's sizing, switches, score bookkeeping and the nothing-fits a fit-judging stage reports
are checked apart from the models; the end-to-end tests with BM25, SigLIP and the agent are
in tests/flows/test_search_e2e.py.
"""

from __future__ import annotations

import pytest
from PIL import Image

from mars_core.search.funnel import NO_PRODUCTS, NOTHING_FITS, FunnelStep, SearchFunnel
from mars_core.search.types import Candidate, CategoryLock, SearchRequest, StageOutput, presented

CATALOGUE = [
    {"key": f"p{i}", "name": f"product {i}", "category": "BED", "fit": i / 10, "pop": 10 - i}
    for i in range(10)
]


class FieldStage:
    """Ranks by one product field, highest first; the first stage ranks the catalogue."""

    def __init__(self, name: str, by: str) -> None:
        self.name, self.by = name, by

    def rank(self, request, candidates, k):
        pool = candidates or [Candidate(key=p["key"], product=p) for p in CATALOGUE]
        for c in pool:
            c.scores[self.name] = c.product[self.by]
        ranked = sorted(pool, key=lambda c: c.scores[self.name], reverse=True)[:k]
        return StageOutput(ranked, details={"saw": len(pool)})


class FitJudgeStage(FieldStage):
    """Ranks by a field as a fit score and presents what reaches its bar, as the agent does."""

    def __init__(self, name: str, by: str, min_fit: float) -> None:
        super().__init__(name, by)
        self.min_fit = min_fit

    def rank(self, request, candidates, k):
        output = super().rank(request, candidates, k)
        scores = [c.scores[self.name] for c in output.candidates]
        output.candidates, output.nothing_fits = presented(output.candidates, scores, self.min_fit)
        return output


def funnel(*, agent_on=True, middle_on=True, min_fit=0.5) -> SearchFunnel:
    return SearchFunnel(
        [
            FunnelStep(FieldStage("bm25", "pop"), k=8),
            FunnelStep(FieldStage("siglip", "pop") if middle_on else None, k=4),
            FunnelStep(FitJudgeStage("agent", "fit", min_fit) if agent_on else None, k=3),
        ],
        final_k=3,
    )


def request() -> SearchRequest:
    return SearchRequest(room=Image.new("RGB", (8, 8)), query="bed")


def test_stages_run_in_order_with_their_sizes_and_scores():
    result = funnel().search(request())
    assert result.stages_run == ["bm25", "siglip", "agent"]
    assert result.details == {"bm25": {"saw": 10}, "siglip": {"saw": 8}, "agent": {"saw": 4}}
    assert [c.key for c in result.results] == ["p3", "p2", "p1"]
    assert all(set(c.scores) == {"bm25", "siglip", "agent"} for c in result.results)
    assert set(result.timings) == {"bm25", "siglip", "agent"}


def test_a_disabled_stage_only_truncates():
    result = funnel(middle_on=False).search(request())
    assert result.stages_run == ["bm25", "agent"]
    assert result.details["agent"] == {"saw": 4}
    assert all("siglip" not in c.scores for c in result.results)


def test_without_the_agent_the_previous_order_is_final_and_no_fit_claim_is_made():
    result = funnel(agent_on=False, min_fit=0.99).search(request())
    assert [c.key for c in result.results] == ["p0", "p1", "p2"]
    assert not result.nothing_fits and result.message is None


def test_low_agent_scores_say_nothing_fits():
    result = funnel(min_fit=0.9).search(request())
    assert result.nothing_fits
    assert result.message == NOTHING_FITS
    assert len(result.results) == 3


def test_first_stage_cannot_be_switched_off():
    with pytest.raises(ValueError, match="first stage"):
        SearchFunnel([FunnelStep(None, k=3)], final_k=3)


class ClosingStage(FieldStage):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_closing_the_funnel_closes_its_stages():
    first = ClosingStage("bm25", "pop")
    with SearchFunnel([FunnelStep(first, 3), FunnelStep(None, 2)], final_k=2) as funnel:
        funnel.search(request())
    assert first.closed


class EmptyLockedStage(FieldStage):
    def rank(self, request, candidates, k):
        return StageOutput([], lock=CategoryLock("DESK"))


def test_a_locked_category_without_products_says_so():
    result = SearchFunnel([FunnelStep(EmptyLockedStage("bm25", "pop"), 3)], final_k=3).search(
        request()
    )
    assert result.results == [] and result.message == NO_PRODUCTS.format(category="DESK")
