"""How a request's agent budget beyond the query is spent: over the categories asked, and
within each on candidates that differ from each other, not only the closest.

A category is judged on the candidates the agent is asked about. Where its products closest
to the room photo are look-alike misfits (indoor chairs by the blue water of a pool, when
the category holds patio chairs too), asking only the closest loses the category although a
fitting variant is in it. So (`allocate`):

* every category asked gets its closest candidate first (the closest categories first, as
  far as the budget goes);
* the rest of the budget goes one candidate at a time to the highest gain across the
  categories, by maximal marginal relevance: closeness to the room (weight `1 - diversity`)
  against likeness to the candidates already picked in the category (weight `diversity`).
  A category of one kind of product (planters) gains little from a second look-alike; one
  that holds two kinds (indoor and patio chairs) gets its other kind next;
* `Likeness`: how alike two products are, in how they look (stage 2's image embeddings) and
  in what their listings say (the words they share): a colour-led embedding sees two blue
  chairs as alike whether or not one is a patio chair; the listing says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

WORD = re.compile(r"[^\W_]+")


@dataclass
class Category:
    """One category's candidates (closest to the room first) as the budget sees them: their
    closeness to the room, their likeness to each other, and which are picked so far."""

    closeness: np.ndarray
    likeness: Callable[[int], np.ndarray]  # every candidate's likeness to candidate i
    picked: list[int] = field(default_factory=list)
    like: np.ndarray | None = None  # each candidate's highest likeness to one picked

    def pick(self, i: int) -> None:
        self.picked.append(i)
        like = self.likeness(i)
        self.like = like if self.like is None else np.maximum(self.like, like)

    def next_gain(self, diversity: float) -> tuple[float, int] | None:
        """The next candidate by maximal marginal relevance and its gain; None when all are
        picked."""
        if len(self.picked) >= len(self.closeness):
            return None
        gain = (1.0 - diversity) * self.closeness - diversity * self.like
        gain[self.picked] = -np.inf
        best = int(np.argmax(gain))
        return float(gain[best]), best


def allocate(categories: list[Category], budget: int, diversity: float) -> list[list[int]]:
    """Spend `budget` candidates over the categories (closest category first): the closest
    candidate of each, as far as the budget goes; then, one at a time, the candidate whose
    gain `(1 - diversity) * closeness - diversity * likeness` (to those already picked in
    its category) is highest across the categories. A category whose candidates are all
    alike (all planters) gets no second; one holding two kinds (indoor and patio chairs) gets
    its other kind next. `diversity` 0 is closeness alone. Returns each category's picks, in
    pick order."""
    for category in categories[:budget]:
        category.pick(int(np.argmax(category.closeness)))
    for _ in range(budget - min(budget, len(categories))):
        best: tuple[float, Category, int] | None = None  # a tie goes to the closer category
        for category in categories:
            found = category.next_gain(diversity)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], category, found[1])
        if best is None:
            break  # every candidate of every category is picked
        best[1].pick(best[2])
    return [category.picked for category in categories]


@dataclass(frozen=True)
class Likeness:
    """How alike a category's candidates are to one of them: `(1 - listing_weight)` times
    the cosine of their image embeddings plus `listing_weight` times the share of listing
    words they have in common (Jaccard)."""

    vectors: np.ndarray  # (n, dim), unit length
    words: np.ndarray  # (n, vocabulary) 0/1: which words each listing holds
    listing_weight: float

    @classmethod
    def of(cls, vectors: np.ndarray, listings: Sequence[str], listing_weight: float) -> Likeness:
        """The likeness of products with these image embeddings and listing texts."""
        sets = [set(WORD.findall(text.lower())) for text in listings]
        vocabulary = {word: i for i, word in enumerate(sorted(set().union(*sets)))}
        words = np.zeros((len(sets), len(vocabulary)), dtype=np.float32)
        for row, found in enumerate(sets):
            words[row, [vocabulary[word] for word in found]] = 1.0
        return cls(np.asarray(vectors, dtype=np.float32), words, listing_weight)

    def __call__(self, i: int) -> np.ndarray:
        image = self.vectors @ self.vectors[i]
        shared = self.words @ self.words[i]
        union = self.words.sum(axis=1) + self.words[i].sum() - shared
        text = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        return (1.0 - self.listing_weight) * image + self.listing_weight * text
