"""How the agent budget beyond the query is spent: each category's closest candidate, then
the candidates that add most (close to the room, unlike those picked in their category)."""

from __future__ import annotations

import numpy as np
import pytest

from mars_core.funnel.budget import Category, Likeness, allocate


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


def chairs() -> Category:
    return Category(CLOSENESS, Likeness.of(VECTORS, LISTINGS, listing_weight=0.5))


def planters() -> Category:
    """Four planters that look and read alike, a little less close to the room."""
    vectors = unit([0, 0, 1], [0, 0.05, 1], [0.05, 0, 1], [0.02, 0.02, 1])
    listings = ["Nook Modern Blue Terracotta Planter . indoor/outdoor planter"] * 4
    return Category(CLOSENESS - 0.05, Likeness.of(vectors, listings, listing_weight=0.5))


def test_closeness_alone_asks_the_look_alikes():
    assert allocate([chairs()], 3, diversity=0.0) == [[0, 1, 2]]


def test_diversity_asks_a_category_s_other_kind_second():
    assert allocate([chairs()], 2, diversity=0.5) == [[0, 3]]
    (everything,) = allocate([chairs()], 9, diversity=0.5)
    assert everything[:2] == [0, 3] and sorted(everything) == [0, 1, 2, 3]
    assert allocate([chairs()], 0, diversity=0.5) == [[]]


def test_the_budget_goes_to_each_category_then_where_it_adds_most():
    """Every category gets its closest; the one more candidate goes to the chairs, whose
    next is another kind of chair, not to the planters, which are all alike."""
    assert allocate([planters(), chairs()], 3, diversity=0.5) == [[0], [0, 3]]
    assert allocate([planters(), chairs()], 1, diversity=0.5) == [[0], []]  # closest first
    spent = allocate([planters(), chairs()], 20, diversity=0.5)  # more than there is
    assert [sorted(picks) for picks in spent] == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_likeness_blends_the_look_and_the_listing_words():
    look = Likeness.of(VECTORS, LISTINGS, listing_weight=0.0)
    assert look(0) == pytest.approx(VECTORS @ VECTORS[0])
    words = Likeness.of(VECTORS, LISTINGS, listing_weight=1.0)(0)
    assert words[0] == pytest.approx(1.0) and words[3] < words[1]  # "patio" shares less
    assert Likeness.of(VECTORS[:2], ["", ""], listing_weight=1.0)(0).tolist() == [0.0, 0.0]
