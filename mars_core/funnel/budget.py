"""How a request's agent budget beyond the query is spent: spread over the categories asked,
and within each category on candidates that differ from each other, not only the closest.

A category is judged on the candidates the agent is asked about. Where its products closest
to the room photo are look-alike misfits (indoor chairs by the blue water of a pool, when
the category holds patio chairs too), asking only the closest loses the category although a
fitting variant is in it. So:

* `spread`: the budget goes round the categories, closest category first, one candidate
  each per round, until it is spent or every category's candidates are: each category asked
  gets `budget // categories` candidates or one more, never more than it has;
* `diverse_order`: a category's candidates are picked by maximal marginal relevance: the
  closest to the room first, then each next one trading closeness to the room (weight
  `1 - diversity`) against likeness to those already picked (weight `diversity`), so a
  second candidate is the category's other kind of product, not the closest one's twin;
* `Likeness`: how alike two products are, in how they look (stage 2's image embeddings) and
  in what their listings say (the words they share): a random or colour-led embedding alone
  sees two blue chairs as alike whether or not one is a patio chair; the listing says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[^\W_]+")


def spread(sizes: list[int], budget: int) -> list[int]:
    """Candidates asked per category (in the order given, closest first), `budget` in all at
    most: one per category per round, a category never more than its `sizes` entry."""
    counts = [0] * len(sizes)
    left = budget
    while left > 0:
        open_ = [i for i, size in enumerate(sizes) if counts[i] < size]
        if not open_:
            break
        for i in open_[:left]:
            counts[i] += 1
        left -= min(left, len(open_))
    return counts


def diverse_order(
    relevance: np.ndarray, likeness: Callable[[int], np.ndarray], count: int, diversity: float
) -> list[int]:
    """Indices of `count` candidates picked by maximal marginal relevance: the most relevant
    first, then each time the one maximising `(1 - diversity) * relevance - diversity * like`,
    where `like` is its highest likeness to one already picked (`likeness(i)`: every
    candidate's likeness to candidate i). `diversity` 0 is closeness alone."""
    count = min(count, len(relevance))
    if count <= 0:
        return []
    picked = [int(np.argmax(relevance))]
    like = likeness(picked[0])
    while len(picked) < count:
        gain = (1.0 - diversity) * relevance - diversity * like
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        like = np.maximum(like, likeness(best))
    return picked


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
