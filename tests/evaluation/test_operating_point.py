"""The operating point a candidate student is chosen with on validation rooms: within the
violation and answerable-abstention bounds, the lowest violation among the points near the
best nDCG@10; else the lowest violation."""

from __future__ import annotations

import pytest

from mars_core.agent.ordering import BY_AGENT, FITS_BY_SIGLIP, Ordering
from mars_core.evaluation.ordering import ABSTAIN, MEASURE, VIOLATION, best_point


def point(order: str, bar: float) -> Ordering:
    return Ordering(order, 0.0, bar, "validation")


def measured(ndcg: float, violation: float, abstain: float = 0.0) -> dict[str, float]:
    return {MEASURE: ndcg, VIOLATION: violation, ABSTAIN: abstain}


def test_the_best_ndcg_within_the_bound_wins_over_a_better_one_outside_it():
    points = {
        point(FITS_BY_SIGLIP, 0.5): measured(0.90, 0.08),
        point(FITS_BY_SIGLIP, 0.6): measured(0.85, 0.04),
        point(BY_AGENT, 0.6): measured(0.86, 0.05),
        point(BY_AGENT, 0.7): measured(0.80, 0.01),
    }
    assert best_point(points, max_violation=0.05, tolerance=0.0) == point(BY_AGENT, 0.6)


def test_near_the_best_ndcg_the_lowest_violation_wins():
    points = {
        point(FITS_BY_SIGLIP, 0.55): measured(0.926, 0.049),
        point(FITS_BY_SIGLIP, 0.6): measured(0.930, 0.041),
        point(FITS_BY_SIGLIP, 0.65): measured(0.925, 0.032),
        point(FITS_BY_SIGLIP, 0.7): measured(0.915, 0.020),
    }
    assert best_point(points, max_violation=0.05, tolerance=0.01) == point(FITS_BY_SIGLIP, 0.65)
    assert best_point(points, max_violation=0.05, tolerance=0.0) == point(FITS_BY_SIGLIP, 0.6)


def test_a_bar_that_abstains_where_something_fits_loses_to_one_within_both_bounds():
    """The higher bar has the lower violation, but says nothing fits on a quarter of the
    answerable requests; where every point abstains too often, violation alone decides."""
    points = {
        point(FITS_BY_SIGLIP, 0.5): measured(0.850, 0.030, abstain=0.05),
        point(FITS_BY_SIGLIP, 0.7): measured(0.852, 0.010, abstain=0.25),
    }
    assert best_point(points, 0.05, 0.01, max_abstain=0.1) == point(FITS_BY_SIGLIP, 0.5)
    assert best_point(points, 0.05, 0.01) == point(FITS_BY_SIGLIP, 0.7)
    assert best_point(points, 0.05, 0.01, max_abstain=0.01) == point(FITS_BY_SIGLIP, 0.7)


def test_equals_go_to_the_earlier_point():
    points = {
        point(FITS_BY_SIGLIP, 0.5): measured(0.8, 0.0),
        point(BY_AGENT, 0.5): measured(0.8, 0),
    }
    assert best_point(points, max_violation=0.05, tolerance=0.0) == point(FITS_BY_SIGLIP, 0.5)


def test_with_none_within_the_bound_the_lowest_violation_wins():
    points = {
        point(BY_AGENT, 0.5): measured(0.9, 0.20),
        point(BY_AGENT, 0.6): measured(0.7, 0.10),
        point(BY_AGENT, 0.7): measured(0.8, 0.10),
    }
    assert best_point(points, max_violation=0.05, tolerance=0.0) == point(BY_AGENT, 0.7)


@pytest.mark.parametrize("bars", [[], [0.0, 0.5], [0.5, 1.0]])
def test_fit_bars_outside_0_1_are_refused(bars):
    from mars_core.config import EvalConfig

    with pytest.raises(ValueError, match=r"eval\.min_fit_scores"):
        EvalConfig(min_fit_scores=bars)


def test_a_teacher_misfit_score_over_a_candidate_bar_is_refused():
    from mars_core.app.compose import load_config
    from mars_core.infra.errors import ConfigError

    with pytest.raises((ValueError, ConfigError), match=r"min\(eval.min_fit_scores\)"):
        load_config(["eval.min_fit_scores=[0.05,0.5]"])
