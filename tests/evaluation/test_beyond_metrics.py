"""The metrics beyond the query on hand-made results: alternatives' precision, room-only
precision@k and fitting categories@k."""

from __future__ import annotations

import pytest

from mars_core.evaluation.beyond import (
    RoomOnlyResult,
    alternatives_metrics,
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
]
ROOMS = room_truths(REQUESTS)


def test_room_truths_know_each_category_and_grade():
    pool = ROOMS["pool"]
    assert pool.category_fits == {
        "BED": False, "PATIO_TABLE": True, "PLANTER": True, "SOFA": False,
    }  # fmt: skip
    assert pool.grades["t1"] == 2 and pool.room_path == "/pool.png"


def test_alternatives_precision_is_the_share_of_offered_categories_that_fit():
    offered = [("pool", ["PATIO_TABLE", "SOFA"]), ("pool", ["PLANTER", "UNJUDGED"]), ("pool", [])]
    metrics = alternatives_metrics(offered, ROOMS)
    assert metrics == {"alternatives_offered": 3.0, "alternatives_precision": pytest.approx(2 / 3)}
    assert alternatives_metrics([], ROOMS)["alternatives_precision"] == 0.0


def test_room_only_precision_and_fitting_categories_at_k():
    pool = ROOMS["pool"]
    good = RoomOnlyResult(pool, ["t1", "t2", "p1"], ["PATIO_TABLE", "PATIO_TABLE", "PLANTER"])
    mixed = RoomOnlyResult(pool, ["t1", "s1", "p2"], ["PATIO_TABLE", "SOFA", "PLANTER"])
    metrics = room_only_metrics([good, mixed], [2, 3])
    assert metrics["room_only.precision_at_2"] == pytest.approx((1 + 1 / 2) / 2)
    assert metrics["room_only.precision_at_3"] == pytest.approx((1 + 1 / 3) / 2)
    assert metrics["room_only.fitting_categories_at_3"] == pytest.approx((2 + 1) / 2)
    assert metrics["room_only.all_categories_fit"] == pytest.approx(1 / 2)  # SOFA misfits
    single = RoomOnlyResult(pool, ["t1"], ["PATIO_TABLE"])  # one category is not several
    assert room_only_metrics([single], [10])["room_only.all_categories_fit"] == 0.0
    assert room_only_metrics([], [10]) == {}
