"""How the agent stage orders its list: the agent's score, a blend, or fits by SigLIP."""

from __future__ import annotations

import dataclasses

from mars_core.agent.ordering import BY_AGENT, FITS_BY_SIGLIP, Ordering, resolve_ordering
from mars_core.config import FunnelConfig

AGENT_SCORES = {"a": 0.9, "b": 0.6, "c": 0.2, "d": 0.4}
SIGLIP = {"a": 0.1, "b": 0.8, "c": 0.9, "d": 0.5}


def order(ordering: Ordering) -> list[str]:
    key = ordering.final(AGENT_SCORES, SIGLIP)
    return sorted(key, key=lambda k: key[k], reverse=True)


def test_fits_come_first_in_stage_2s_order_then_the_rest_by_the_agent():
    assert order(Ordering(FITS_BY_SIGLIP, 0.0, 0.5)) == ["b", "a", "d", "c"]


def test_the_agent_orders_alone_or_blended_within_its_fits():
    """A blend reorders the fits (a, b) only: c, the most similar, stays a misfit below them."""
    assert order(Ordering(BY_AGENT, 0.0, 0.5)) == ["a", "b", "d", "c"]
    assert order(Ordering(BY_AGENT, 0.9, 0.5)) == ["b", "a", "d", "c"]
    assert order(Ordering(BY_AGENT, 1.0, 0.5)) == order(Ordering(FITS_BY_SIGLIP, 0.0, 0.5))


def test_without_stage_2_scores_the_agent_orders():
    ordering = Ordering(FITS_BY_SIGLIP, 0.0, 0.5)
    assert ordering.final(AGENT_SCORES, {}) == AGENT_SCORES


def test_an_explicit_order_wins_and_auto_without_a_version_is_the_agent():
    explicit = dataclasses.replace(FunnelConfig(), order=FITS_BY_SIGLIP)
    assert resolve_ordering(explicit, ("any-model", 1)).order == FITS_BY_SIGLIP
    auto = resolve_ordering(FunnelConfig(), None)
    assert (auto.order, auto.chosen_by) == (BY_AGENT, "funnel.order")
    assert auto.describe() == "agent score, fits from 0.5, chosen by funnel.order"
