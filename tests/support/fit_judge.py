"""A student that judges as the generated world's ground truth does, for the tests of what the
funnel does with a student's judgement (which categories it asks about, offers and groups).

A student that learned room/product fit cannot be trained within a test session on this
machine (the tiny student learns colours in a minute; relations take far longer, see
tests/agent/test_agent_trained.py), so these tests put this judge where the student goes: it
knows a room by its photo's pixels and a product by its image's, and scores 0.9 for a product
the ground truth grades as fitting the room, 0.1 for a misfit. It counts every candidate it is
asked to score, so a test can count the agent's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from mars_core.agent.prompt import Answer
from mars_core.agent.types import GeneratedAnswer, ProductView
from mars_core.agent.vision import image_digest
from mars_core.catalogue.schema import CATALOGUE_FILE, GROUND_TRUTH_FILE, ROOMS_FILE
from mars_core.vision.images import load_image

FITS, MISFITS = 0.9, 0.1


class GroundTruthJudge:
    """A `Scorer` whose scores are the ground truth's fit (see the module's docstring)."""

    adapter = "ground truth"

    def __init__(self, out_dir: Path, max_image_pixels: int) -> None:
        rooms = pq.read_table(out_dir / ROOMS_FILE, columns=["room_id", "path"]).to_pylist()
        products = pq.read_table(out_dir / CATALOGUE_FILE, columns=["key", "image_path"])
        self.room_of = {
            image_digest(load_image(row["path"], max_image_pixels)): row["room_id"] for row in rooms
        }
        self.product_of = {
            image_digest(load_image(row["image_path"], max_image_pixels)): row["key"]
            for row in products.to_pylist()
        }
        truth = pq.read_table(out_dir / GROUND_TRUTH_FILE, columns=["room_id", "key", "grade"])
        self.grade = {(r["room_id"], r["key"]): r["grade"] for r in truth.to_pylist()}
        self.scored: list[tuple[str, int]] = []  # (query, candidates) per score call

    def fit(self, room: Image.Image, product: ProductView) -> float:
        key = (self.room_of[image_digest(room)], self.product_of[image_digest(product.image)])
        return FITS if self.grade[key] > 0 else MISFITS

    def score(self, room: Image.Image, query: str, products: Sequence[ProductView]) -> list[float]:
        self.scored.append((query, len(products)))
        return [self.fit(room, product) for product in products]

    def generate(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        scores: Sequence[float] | None = None,
        max_new_tokens: int | None = None,
    ) -> list[GeneratedAnswer]:
        answers = []
        for product in products:
            fit = self.fit(room, product)
            reason = "it belongs here" if fit == FITS else "it does not belong here"
            answers.append(GeneratedAnswer(reason, Answer(fit, reason)))
        return answers

    def for_concurrent_requests(self, window_s: float) -> GroundTruthJudge:
        return self

    def close(self) -> None:
        pass

    @property
    def scored_rows(self) -> int:
        return sum(n for _, n in self.scored)
