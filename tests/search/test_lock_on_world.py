"""Stage 1 on the generated world: every category the world sells locks, and only to itself."""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image
from support.catalogue_factory import read_rows

from mars_core.funnel.stages import BM25
from mars_core.index.vocabulary import CategoryVocabulary
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest

ROOM = Image.new("RGB", (32, 32))


@pytest.fixture(scope="module")
def stage(built) -> LexicalStage:
    stage = LexicalStage.open(built.snapshot, built.cfg, name=BM25)
    yield stage
    stage.close()


def test_each_world_category_is_lockable_and_locks_to_itself_alone(stage, built, catalogue_world):
    items = {(row["category"], row["item_id"]) for row in read_rows(catalogue_world.catalogue)}
    sizes = Counter(category for category, _ in items)  # one listing per item comes back
    vocabulary = CategoryVocabulary(built.cfg.vocabulary)
    assert set(sizes) <= vocabulary.categories
    for category, size in sizes.items():
        product = next(r for r in read_rows(catalogue_world.catalogue) if r["category"] == category)
        query = f"{product['color']} {built.cfg.vocabulary.categories[category][0]}"
        out = stage.rank(SearchRequest(ROOM, query), None, 1000)
        assert out.lock.category == category, query
        assert {c.product["category"] for c in out.candidates} == {category}
        assert len(out.candidates) == size


def test_an_item_sold_on_several_marketplaces_comes_back_once(stage, catalogue_world):
    rows = read_rows(catalogue_world.catalogue)
    domains = Counter(row["item_id"] for row in rows)
    item = next(i for i, n in domains.items() if n > 1)
    product = next(r for r in rows if r["item_id"] == item)
    query = f"{product['name']} {product['category'].lower().replace('_', ' ')}"
    out = stage.rank(SearchRequest(ROOM, query), None, 1000)
    keys = [c.product["item_id"] for c in out.candidates]
    assert keys.count(item) == 1
    assert out.details["collapsed_listings"] >= domains[item] - 1
