"""How the agent budget beyond the query is spent: spread over the categories, and within a
category on candidates that differ (the closest first)."""

from __future__ import annotations

import numpy as np
import pytest

from mars_core.funnel.budget import Likeness, diverse_order, spread


@pytest.mark.parametrize(
    ("sizes", "budget", "counts"),
    [
        ([5, 5, 5], 7, [3, 2, 2]),  # budget // 3 each, the closest categories the extra
        ([5, 5, 5], 2, [1, 1, 0]),  # fewer than the categories: the closest are asked
        ([1, 5, 5], 9, [1, 4, 4]),  # a small category's share goes to the others
        ([2, 1], 10, [2, 1]),  # everything there is, and no more
        ([], 5, []),
    ],
)
def test_the_budget_goes_round_the_categories(sizes, budget, counts):
    assert spread(sizes, budget) == counts
    assert sum(counts) <= budget


def unit(*rows: list[float]) -> np.ndarray:
    matrix = np.array(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# Three blue indoor chairs (closest to the pool photo's blue) and a patio chair.
VECTORS = unit([1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05], [0.6, 0.8, 0])
LISTINGS = [  # as the generated world's search text reads: brand, style, colour, material...
    "Nook Modern Blue Wood Chair, Dining Chair . Chairs . dining room furniture kitchen furniture",
    "Rivet Classic Blue Metal Chair, Side Chair . Chairs . dining room furniture kitchen furniture",
    "Alder Rustic Blue Fabric Chair, Dining Chair . Chairs . dining room furniture",
    "Nook Modern Blue Teak Patio Chair, Stacking Chair . Patio Seating . pool furniture",
]
CLOSENESS = np.array([0.9, 0.88, 0.87, 0.8])


def test_closeness_alone_asks_the_look_alikes():
    likeness = Likeness.of(VECTORS, LISTINGS, listing_weight=0.5)
    assert diverse_order(CLOSENESS, likeness, 3, diversity=0.0) == [0, 1, 2]


def test_diversity_asks_the_other_kind_of_product_second():
    likeness = Likeness.of(VECTORS, LISTINGS, listing_weight=0.5)
    assert diverse_order(CLOSENESS, likeness, 2, diversity=0.5) == [0, 3]
    assert diverse_order(CLOSENESS, likeness, 9, diversity=0.5)[:2] == [0, 3]
    assert sorted(diverse_order(CLOSENESS, likeness, 9, diversity=0.5)) == [0, 1, 2, 3]
    assert diverse_order(CLOSENESS, likeness, 0, diversity=0.5) == []


def test_likeness_blends_the_look_and_the_listing_words():
    look = Likeness.of(VECTORS, LISTINGS, listing_weight=0.0)
    assert look(0) == pytest.approx(VECTORS @ VECTORS[0])
    words = Likeness.of(VECTORS, LISTINGS, listing_weight=1.0)(0)
    assert words[0] == pytest.approx(1.0) and words[3] < words[1]  # "patio" shares less
    assert Likeness.of(VECTORS[:2], ["", ""], listing_weight=1.0)(0).tolist() == [0.0, 0.0]
