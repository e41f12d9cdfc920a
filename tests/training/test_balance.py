"""Grade balancing: the rarer grade of each room type x category is repeated, nothing dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mars_core.training.balance import balance_grades


@dataclass(frozen=True)
class Pair:
    name: str
    room_type: str
    category: str
    fits: bool


def pairs(room_type: str, category: str, fits: int, misfits: int) -> list[Pair]:
    return [
        Pair(f"{room_type}-{category}-{fit}-{i}", room_type, category, fit)
        for fit, n in ((True, fits), (False, misfits))
        for i in range(n)
    ]


def counts(examples: list[Pair]) -> Counter:
    return Counter((e.room_type, e.category, e.fits) for e in examples)


def test_the_rarer_grade_is_repeated_up_to_the_commoner_count():
    mined = pairs("bedroom", "CHAIR", 12, 2) + pairs("pool", "CHAIR", 1, 9)
    balanced = balance_grades(mined, 1.0, seed=0)
    assert balanced[: len(mined)] == mined  # originals first, in order
    assert counts(balanced) == Counter(
        {
            ("bedroom", "CHAIR", True): 12,
            ("bedroom", "CHAIR", False): 12,
            ("pool", "CHAIR", True): 9,
            ("pool", "CHAIR", False): 9,
        }
    )
    repeats = Counter(e.name for e in balanced if e.room_type == "bedroom" and not e.fits)
    assert sorted(repeats.values()) == [6, 6]  # as evenly as the count allows


def test_half_balance_one_grade_cells_and_zero_leave_as_mined():
    mined = pairs("bedroom", "BED", 8, 0) + pairs("bedroom", "CHAIR", 10, 1)
    half = counts(balance_grades(mined, 0.5, seed=0))
    assert half[("bedroom", "CHAIR", False)] == 5
    assert half[("bedroom", "BED", True)] == 8
    assert balance_grades(mined, 0.0, seed=0) == mined


def test_the_same_seed_repeats_the_same_examples():
    mined = pairs("kitchen", "TABLE", 9, 2)
    assert balance_grades(mined, 0.7, seed=3) == balance_grades(mined, 0.7, seed=3)
