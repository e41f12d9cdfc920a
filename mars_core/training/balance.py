"""Balance the teacher's grades within each room type x category before training.

Mining draws pairs by how products look beside the room, so a grade can be rare exactly where
it matters: an indoor room's chairs are nearly all indoor chairs, so the student sees a patio
chair in a living room a handful of times among dozens of fitting chairs, and learns to call
every chair in a living room a fit. Within each (room type, category) cell, the rarer grade's
examples are repeated (in a seeded order, each as evenly as the count allows) until it holds
`balance` x the commoner grade's count; nothing is dropped, and a cell with one grade only is
left as it is. Only the teacher's labels are read: this is a training recipe, not ground truth.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Graded(Protocol):
    """What balancing reads of an example: its cell and whether the teacher called it a fit."""

    room_type: str
    category: str
    fits: bool


G = TypeVar("G", bound=Graded)
T = TypeVar("T")


def balance_grades(examples: Sequence[G], balance: float, seed: int) -> list[G]:
    """`examples` plus repeats of each cell's rarer grade up to `balance` x the commoner's
    count (0: as mined). The originals keep their order; the repeats follow them."""
    if balance <= 0:
        return list(examples)
    grades: dict[tuple[str, str], dict[bool, list[G]]] = defaultdict(lambda: defaultdict(list))
    for example in examples:
        grades[(example.room_type, example.category)][example.fits].append(example)
    rng = random.Random(seed)
    repeats: list[G] = []
    for cell in sorted(grades):
        by_grade = grades[cell]
        if len(by_grade) < 2:
            continue
        common = max(len(group) for group in by_grade.values())
        for fits in sorted(by_grade):
            repeats += _repeat(by_grade[fits], math.ceil(balance * common), rng)
    return [*examples, *repeats]


def _repeat(group: list[T], target: int, rng: random.Random) -> list[T]:
    """Extra copies of `group` so that it holds `target` examples in all (none if it does)."""
    extra = target - len(group)
    if extra <= 0:
        return []
    order = list(group)
    rng.shuffle(order)
    return [order[i % len(order)] for i in range(extra)]
