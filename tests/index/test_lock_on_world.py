"""Stage 1 on the generated world: every category the world sells locks, and only to itself."""

from __future__ import annotations

from collections import Counter

import pytest
from catalogue_factory import read_rows
from PIL import Image

from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.vocabulary import CategoryVocabulary

ROOM = Image.new("RGB", (32, 32))


@pytest.fixture(scope="module")
def stage(built) -> LexicalStage:
    stage = LexicalStage.open(built.snapshot, built.cfg)
    yield stage
    stage.close()


def test_each_world_category_is_lockable_and_locks_to_itself_alone(stage, built, world):
    sizes = Counter(row["category"] for row in read_rows(world.catalogue))
    vocabulary = CategoryVocabulary(built.cfg.vocabulary)
    assert set(sizes) <= vocabulary.categories
    for category, size in sizes.items():
        product = next(r for r in read_rows(world.catalogue) if r["category"] == category)
        query = f"{product['color']} {built.cfg.vocabulary.categories[category][0]}"
        out = stage.rank(SearchRequest(ROOM, query), None, 1000)
        assert out.notes["category"] == category, query
        assert {c.product["category"] for c in out.candidates} == {category}
        assert len(out.candidates) == size
