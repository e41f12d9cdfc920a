"""The metrics beyond the query on hand-made results: what is shown (alternatives'
precision, room-only precision@k and fitting categories@k), what is missed (alternatives'
recall, room-only category recall@k, nothing shown while something fits) and what it cost."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mars_core.evaluation.beyond import (
    AlternativesSought,
    RoomOnlyResult,
    alternatives_metrics,
    alternatives_sought,
    room_only_metrics,
    room_truths,
)
from mars_core.evaluation.requests import EvalRequest


def request(room: str, category: str, grades: dict[str, int]) -> EvalRequest:
    return EvalRequest(room, "pool", f"/{room}.png", category, category.lower(), grades)


REQUESTS = [
    request("pool", "BED", {"bed1": 0, "bed2": 0}),
    request("pool", "PATIO_TABLE", {"t1": 2, "t2": 1}),
    request("pool", "PLANTER", {"p1": 1, "p2": 0}),
    request("pool", "SOFA", {"s1": 0}),
    request("pool", "CHAIR", {"c1": 0, "c2": 1}),  # a patio chair behind an indoor one
]
ROOMS = room_truths(REQUESTS)


def test_room_truths_know_each_category_and_grade():
    pool = ROOMS["pool"]
    assert pool.category_fits == {
        "BED": False, "PATIO_TABLE": True, "PLANTER": True, "SOFA": False, "CHAIR": True,
    }  # fmt: skip
    assert pool.fitting == {"PATIO_TABLE", "PLANTER", "CHAIR"}
    assert pool.grades["t1"] == 2 and pool.room_path == "/pool.png"


def sought(offered: list[str], asked: str = "BED", scored: int = 9) -> AlternativesSought:
    return AlternativesSought("pool", asked, offered, scored=scored, seconds=0.3)


def test_alternatives_precision_is_the_share_of_offered_categories_that_fit():
    offered = [sought(["PATIO_TABLE", "SOFA"]), sought(["PLANTER", "UNJUDGED"]), sought([])]
    metrics = alternatives_metrics(offered, ROOMS, offerable=3)
    assert metrics["alternatives_offered"] == 3.0
    assert metrics["alternatives_precision"] == pytest.approx(2 / 3)
    assert alternatives_metrics([], ROOMS, 3)["alternatives_precision"] == 0.0


def test_alternatives_recall_counts_the_fitting_categories_left_out():
    """Three other categories fit the pool (patio tables, planters, chairs): offering one of
    them is a third; with at most two offered, two of them are all."""
    one = alternatives_metrics([sought(["PLANTER"])], ROOMS, offerable=3)
    assert one["alternatives_recall"] == pytest.approx(1 / 3)
    two = alternatives_metrics([sought(["PLANTER", "CHAIR"])], ROOMS, offerable=2)
    assert two["alternatives_recall"] == 1.0
    # The category asked for is not one to offer instead: asked CHAIR, two others fit.
    chair = alternatives_metrics([sought(["PLANTER"], asked="CHAIR")], ROOMS, 3)
    assert chair["alternatives_recall"] == pytest.approx(1 / 2)
    none = alternatives_metrics([sought([])], ROOMS, offerable=3)
    assert none["alternatives_recall"] == 0.0 and none["alternatives_offered"] == 0.0


def test_alternatives_cost_is_the_candidates_asked_and_the_seconds_added():
    metrics = alternatives_metrics(
        [sought(["PLANTER"], scored=9), sought([], scored=20)], ROOMS, offerable=3
    )
    assert metrics["alternatives_candidates_mean"] == pytest.approx(14.5)
    assert metrics["alternatives_candidates_max"] == 20.0
    assert metrics["alternatives_seconds_mean"] == pytest.approx(0.3)


def test_only_a_search_that_sought_alternatives_counts():
    alternative = SimpleNamespace(category="PLANTER")
    nofit = SimpleNamespace(
        details={"alternatives": {"scored": 9, "seconds": 0.4}}, alternatives=[alternative]
    )
    found = alternatives_sought(REQUESTS[0], nofit)
    assert found == AlternativesSought("pool", "BED", ["PLANTER"], 9, 0.4)
    assert alternatives_sought(REQUESTS[1], SimpleNamespace(details={}, alternatives=[])) is None


def test_room_only_precision_and_fitting_categories_at_k():
    pool = ROOMS["pool"]
    good = RoomOnlyResult(pool, ["t1", "t2", "p1"], ["PATIO_TABLE", "PATIO_TABLE", "PLANTER"])
    mixed = RoomOnlyResult(pool, ["t1", "s1", "p2"], ["PATIO_TABLE", "SOFA", "PLANTER"])
    metrics = room_only_metrics([good, mixed], [2, 3], per_category=2)
    assert metrics["room_only.precision_at_2"] == pytest.approx((1 + 1 / 2) / 2)
    assert metrics["room_only.precision_at_3"] == pytest.approx((1 + 1 / 3) / 2)
    assert metrics["room_only.fitting_categories_at_3"] == pytest.approx((2 + 1) / 2)
    assert metrics["room_only.all_categories_fit"] == pytest.approx(1 / 2)  # SOFA misfits
    single = RoomOnlyResult(pool, ["t1"], ["PATIO_TABLE"])  # one category is not several
    assert room_only_metrics([single], [10], 2)["room_only.all_categories_fit"] == 0.0
    assert room_only_metrics([], [10], 2) == {}


def test_room_only_category_recall_counts_what_the_top_k_could_have_shown():
    """Three categories fit the pool. A top 3 at two products a category can show one whole
    category and part of another: up to one counts (k // per_category). A top 10 can show
    all three: two of them found is two thirds."""
    pool = ROOMS["pool"]
    two = RoomOnlyResult(pool, ["t1", "t2", "p1"], ["PATIO_TABLE", "PATIO_TABLE", "PLANTER"])
    top3 = room_only_metrics([two], [3, 10], per_category=2)
    assert top3["room_only.category_recall_at_3"] == 1.0  # capped at what k can show
    assert top3["room_only.category_recall_at_10"] == pytest.approx(2 / 3)
    misfits = RoomOnlyResult(pool, ["s1", "c1"], ["SOFA", "CHAIR"])  # the indoor chair
    assert room_only_metrics([misfits], [10], 2)["room_only.category_recall_at_10"] == 0.0


def test_nothing_shown_while_something_fits_is_a_miss():
    pool = ROOMS["pool"]
    told_nothing = RoomOnlyResult(pool, [], [], nothing_fits=True, scored=20, seconds=0.5)
    shown = RoomOnlyResult(pool, ["p1"], ["PLANTER"], scored=10, seconds=0.3)
    metrics = room_only_metrics([told_nothing, shown], [10], per_category=2)
    assert metrics["room_only.nothing_shown_while_fits"] == pytest.approx(1 / 2)
    assert metrics["room_only.category_recall_at_10"] == pytest.approx((0 + 1 / 3) / 2)
    assert metrics["room_only.candidates_mean"] == 15.0
    assert metrics["room_only.candidates_max"] == 20.0
    assert metrics["room_only.seconds_mean"] == pytest.approx(0.4)
