"""Which category a query names: synonyms, plurals and phrases from conf, the head noun wins."""

from __future__ import annotations

import pytest

from mars_core.config import VocabularyConfig
from mars_core.index.vocabulary import CategoryVocabulary, EmptyQueryError, plurals


@pytest.fixture(scope="module")
def vocabulary(cfg) -> CategoryVocabulary:
    return CategoryVocabulary(cfg.index.vocabulary)


@pytest.mark.parametrize(
    ("query", "category"),
    [
        ("couch", "SOFA"),
        ("sofas", "SOFA"),
        ("Two blue COUCHES", "SOFA"),
        ("a loveseat", "SOFA"),
        ("nightstand", "NIGHTSTAND"),
        ("night stands", "NIGHTSTAND"),
        ("bedside tables", "NIGHTSTAND"),
        ("bookshelves", "SHELF"),
        ("shelves", "SHELF"),
        ("bed", "BED"),
        ("a pool lounger", "OUTDOOR_LOUNGE_CHAIR"),
        ("patio umbrellas", "PATIO_UMBRELLA"),
    ],
)
def test_synonyms_and_plurals_name_the_category(vocabulary, query, category):
    assert vocabulary.match(query).category == category


@pytest.mark.parametrize(
    ("query", "category"),
    [
        ("lamp for the bedside table", "LAMP"),  # context after "for"
        ("bedside table lamp", "LAMP"),  # compound: the last noun is the product
        ("sofa table", "TABLE"),
        ("a sofa bed", "SOFA"),  # the longer phrase wins over "bed"
        ("rug in front of the sofa", "RUG"),
        ("for the bedroom, a rug", "RUG"),  # no category before the context word
    ],
)
def test_the_head_of_the_phrase_is_the_product(vocabulary, query, category):
    match = vocabulary.match(query)
    assert match.category == category
    assert category in match.mentions


def test_a_query_without_a_category_word_matches_none(vocabulary):
    match = vocabulary.match("something blue and cosy")
    assert match.category is None and match.mentions == ()


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_queries_are_refused_with_what_is_accepted(vocabulary, query):
    with pytest.raises(EmptyQueryError, match=r"empty.*e\.g\. 'bed'"):
        vocabulary.match(query)


def test_plural_rules():
    assert plurals("sofa") == {"sofas"}
    assert plurals("couch") == {"couches"}
    assert plurals("canopy") == {"canopies"}
    assert plurals("tray") == {"trays"}
    assert "shelves" in plurals("shelf")


def test_a_word_under_two_categories_is_refused_by_name():
    with pytest.raises(ValueError, match="'Seat' names both CHAIR and SOFA"):
        VocabularyConfig(categories={"CHAIR": ["chair", "seat"], "SOFA": ["sofa", "Seat"]})


def test_categories_must_be_upper_case():
    with pytest.raises(ValueError, match="upper-case"):
        VocabularyConfig(categories={"Sofa": ["sofa"]})


def test_the_configured_vocabulary_covers_the_core_categories(vocabulary):
    assert {"BED", "SOFA", "CHAIR", "TABLE", "LAMP", "RUG", "NIGHTSTAND"} <= vocabulary.categories


def test_a_phrase_of_a_category_the_catalogue_lacks_falls_back_to_its_head_noun(vocabulary):
    """Real ABO files a patio chair under CHAIR: with no OUTDOOR_CHAIR products, "patio chair"
    locks to CHAIR instead of to an empty category."""
    from mars_core.app.compose import load_config
    from mars_core.index.vocabulary import CategoryVocabulary

    assert vocabulary.match("patio chair").category == "OUTDOOR_CHAIR"
    present = CategoryVocabulary(load_config().index.vocabulary, present={"CHAIR", "TABLE"})
    assert present.match("patio chair").category == "CHAIR"
    assert present.match("outdoor table").category == "TABLE"
    assert present.match("lounge chair").category == "CHAIR"
    assert present.match("wall clock").category == "CLOCK"  # nothing present: still locked
