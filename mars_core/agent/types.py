"""What every kind of agent shares: a candidate as the agent sees it, a generated answer, the
fast score's forced opening, and the `Scorer` the agent stage asks for.

Three scorers implement `Scorer`: the model in this process (`scorer.AgentScorer`), the same
behind a queue that merges concurrent requests (`batching.AgentBatcher`) and a served student
(`remote.RemoteAgentScorer`). This module imports neither torch nor transformers, so a module
that only passes candidates and answers around (training, evaluation) stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from mars_core.prompt import ANSWER_PREFIX, Answer

# The fast path's forced answer opening; its last two tokens are the digit `0` and `.`.
SCORE_PROBE = ANSWER_PREFIX + "0."


@dataclass(frozen=True)
class ProductView:
    """A candidate as the agent sees it: its image and `prompt.product_text(row)`."""

    image: Image.Image
    text: str


@dataclass(frozen=True)
class GeneratedAnswer:
    """A generated answer: the raw text and its parse (None when malformed)."""

    text: str
    answer: Answer | None


# One query for the batched calls (`score_many` / `generate_many`): (room, query, products).
Job = tuple[Image.Image, str, Sequence[ProductView]]


class Scorer(Protocol):
    """Scores and explains (room, query, product) triples: what the agent stage runs."""

    @property
    def adapter(self) -> str | None:
        """What ranks results, as pages and tables say it (`infra.registry.describe_registered`)."""
        ...

    def score(self, room: Image.Image, query: str, products: Sequence[ProductView]) -> list[float]:
        """Fast scores in [0, 1], one per product (no generation)."""
        ...

    def generate(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        scores: Sequence[float] | None = None,
        max_new_tokens: int | None = None,
    ) -> list[GeneratedAnswer]:
        """Greedy answer JSON per product; with `scores` (the products' fast scores) each
        answer opens with its score written out and only the rationale is generated."""
        ...

    def for_concurrent_requests(self, window_s: float) -> Scorer:
        """This scorer as a service whose requests arrive concurrently uses it: requests
        that come within `window_s` of each other share forward passes where the scorer
        batches them itself."""
        ...

    def close(self) -> None:
        """Release what the scorer holds (a worker thread, connections, kept KV caches)."""
        ...
