"""Stage 1 on a real Lucene index: the category lock keeps every other category out."""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image
from support.catalogue_factory import read_rows, write_catalogue
from support.indexed import WORLD_PRODUCTS, World, build_both

from mars_core.funnel.stages import BM25
from mars_core.index.lucene import HIT_COLUMNS
from mars_core.index.vocabulary import EmptyQueryError
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest

ROOM = Image.new("RGB", (32, 32), (128, 128, 128))


@pytest.fixture(scope="module")
def catalogue_world(tmp_path_factory) -> World:
    """An adversarial catalogue: other categories' texts say "sofa" and "bed" (PET_BED, rugs
    "for under the sofa"), so only the FILTER clause can keep them out."""
    folder = tmp_path_factory.mktemp("trap_world")
    return World(write_catalogue(folder, WORLD_PRODUCTS), folder)


@pytest.fixture(scope="module")
def built(catalogue_world, index_cfg, embedder, tmp_path_factory):
    return build_both(catalogue_world, index_cfg(tmp_path_factory.mktemp("trap_index")), embedder)


@pytest.fixture(scope="module")
def stage(built) -> LexicalStage:
    stage = LexicalStage.open(built.snapshot, built.cfg, name=BM25)
    yield stage
    stage.close()


@pytest.fixture(scope="module")
def texts(catalogue_world) -> dict[str, str]:
    """key -> the text BM25 indexed (stage 1 hands on only the fields later stages read)."""
    return {row["key"]: row["search_text"] for row in read_rows(catalogue_world.catalogue)}


@pytest.fixture(scope="module")
def sizes(catalogue_world) -> Counter:
    items = {(row["category"], row["item_id"]) for row in read_rows(catalogue_world.catalogue)}
    return Counter(category for category, _ in items)


def search(stage: LexicalStage, query: str, k: int = 1000):
    return stage.rank(SearchRequest(ROOM, query), None, k)


@pytest.mark.parametrize(
    ("query", "category", "elsewhere"),
    [
        # "sofa" is in TABLE, CHAIR and RUG texts too; "bed" in PET_BED, RUG, NIGHTSTAND texts.
        ("sofas", "SOFA", {"TABLE", "CHAIR", "RUG"}),
        ("a blue couch", "SOFA", {"TABLE", "CHAIR", "RUG"}),
        ("bed", "BED", {"PET_BED", "RUG", "NIGHTSTAND"}),
        ("nightstand", "NIGHTSTAND", {"LAMP"}),
        ("lamp for the bedside table", "LAMP", {"TABLE", "PATIO_TABLE"}),
    ],
)
def test_the_lock_returns_only_the_asked_category(stage, sizes, query, category, elsewhere):
    out = search(stage, query)
    assert out.lock.locked and out.lock.category == category
    assert {c.product["category"] for c in out.candidates} == {category}
    # Every product of the category comes back, with or without the query's words.
    assert len(out.candidates) == sizes[category]
    # The same words unlocked do reach other categories: the FILTER clause is what keeps them out.
    terms = stage.index.analyze(query)
    unlocked = set(
        stage.index.search(terms, category=None, k=1000).products["category"].to_pylist()
    )
    assert elsewhere <= unlocked


def test_products_with_the_query_words_rank_first(stage, texts):
    out = search(stage, "blue couch", k=50)
    scores = [c.scores["bm25"] for c in out.candidates]
    assert scores == sorted(scores, reverse=True)
    assert "blue" in texts[out.candidates[0].key].lower()


def test_an_unknown_category_runs_unlocked_and_says_so(stage, texts):
    out = search(stage, "something blue")
    assert not out.lock.locked and out.lock.category is None
    assert "something blue" in out.lock.reason
    categories = {c.product["category"] for c in out.candidates}
    assert len(categories) > 3  # the whole catalogue, blue things of many kinds
    assert all("blue" in texts[c.key].lower() for c in out.candidates)


def test_categories_no_word_can_lock_are_reported(built):
    assert built.report.unlockable_categories == ["PET_BED"]  # no vocabulary word names it


def test_a_known_category_absent_from_the_catalogue_stays_locked(stage):
    """No clocks for sale: the answer is none, not clock-coloured sofas."""
    out = search(stage, "wall clock")
    assert out.lock.locked and out.lock.category == "CLOCK"
    assert out.candidates == []


def test_pyserini_reads_the_index_as_its_own(built):
    from pyserini.search.lucene import LuceneSearcher

    from mars_core.index.lucene import INDEX_DIR

    searcher = LuceneSearcher(str(built.snapshot.lucene_path / INDEX_DIR))
    hits = searcher.search("velvet sofa", k=5)
    assert len(hits) == 5 and searcher.num_docs == built.report.rows
    searcher.close()


def test_candidates_carry_the_fields_later_stages_read(stage, catalogue_world):
    rows = {row["key"]: row for row in read_rows(catalogue_world.catalogue)}
    for candidate in search(stage, "rug", k=5).candidates:
        assert candidate.product == {name: rows[candidate.key][name] for name in HIT_COLUMNS}
        assert {"name", "category", "image_path"} <= set(candidate.product)


def test_k_limits_the_result(stage):
    assert len(search(stage, "sofa", k=7).candidates) == 7


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "???", "the of and"])
def test_empty_queries_get_a_clear_error(stage, query):
    with pytest.raises(EmptyQueryError, match=r"e\.g\. 'bed'"):
        search(stage, query)


def test_stage_one_ranks_the_whole_catalogue_only(stage):
    out = search(stage, "bed", k=3)
    with pytest.raises(ValueError, match="first stage"):
        stage.rank(SearchRequest(ROOM, "bed"), out.candidates, 3)
