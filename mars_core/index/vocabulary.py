"""Which category a query asks for: "couch", "sofas", "a blue loveseat" -> SOFA.

The words come from config (`conf/index/vocabulary/`); regular plurals of the last word of
each phrase are derived here. When a query names several categories, the product is the
head of the phrase before the first context word: "bedside table lamp" and "lamp for the
bedside table" both ask for a LAMP.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from mars_core.config import VocabularyConfig
from mars_core.infra.errors import EmptyQueryError

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class CategoryMatch:
    """The category a query locks to (None: no known word) and every category it mentions."""

    category: str | None
    mentions: tuple[str, ...]
    words: tuple[str, ...]  # the query's words, lower-cased


def category_query(category: str, vocabulary: VocabularyConfig) -> str:
    """The words a user asks for `category` by (mining's queries, the evaluation's requests,
    the categories asked about beyond the query): its first vocabulary phrase, else its name."""
    terms = vocabulary.categories.get(category)
    return terms[0] if terms else category.replace("_", " ").lower()


def query_words(query: str) -> tuple[str, ...]:
    """Lower-cased words of a query; raises on an empty or whitespace-only query."""
    if not isinstance(query, str) or not query.strip():
        raise EmptyQueryError(
            f"query {query!r} is empty: give a few words naming the product, e.g. 'bed' or "
            "'a lamp for the reading corner'"
        )
    return tuple(WORD.findall(query.lower()))


def plurals(word: str) -> set[str]:
    """Regular English plurals of one word (irregular ones belong in the vocabulary)."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return {word + "es"}
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return {word[:-1] + "ies"}
    if word.endswith("fe"):
        return {word + "s", word[:-2] + "ves"}
    if word.endswith("f"):
        return {word + "s", word[:-1] + "ves"}
    return {word + "s"}


def phrase_forms(term: str) -> set[tuple[str, ...]]:
    """A vocabulary phrase and its plural forms, as word tuples."""
    words = tuple(WORD.findall(term.lower()))
    if not words:
        return set()
    return {words} | {(*words[:-1], plural) for plural in plurals(words[-1])}


class CategoryVocabulary:
    """Maps phrases (with plurals) to categories and picks the one a query asks for."""

    def __init__(self, cfg: VocabularyConfig, present: Collection[str] | None = None) -> None:
        """`present`: the catalogue's categories, when known. A query is first matched
        against their phrases only, so a category the catalogue lacks gives way to one it has
        ("patio chair" -> CHAIR in a catalogue whose patio chairs are CHAIRs, as in real ABO);
        a query naming only missing categories still locks to one ("wall clock" -> CLOCK, and
        the answer is none, not clock-coloured sofas)."""
        self.everything = None if present is None else CategoryVocabulary(cfg)
        self.phrases: dict[tuple[str, ...], str] = {}
        for category, terms in cfg.categories.items():
            if present is not None and category not in present:
                continue
            for term in terms:
                for form in phrase_forms(term):
                    # An explicit term wins over a derived plural that happens to equal it.
                    self.phrases.setdefault(form, category)
        self.longest = max((len(p) for p in self.phrases), default=0)
        self.head_breaks = frozenset(w.lower() for w in cfg.head_breaks)

    @property
    def categories(self) -> set[str]:
        return set(self.phrases.values())

    def match(self, query: str) -> CategoryMatch:
        """The category a query asks for, or None when it names no known category."""
        found = self._match(query)
        if found.category is None and self.everything is not None:
            return self.everything.match(query)
        return found

    def _match(self, query: str) -> CategoryMatch:
        words = query_words(query)
        found = self._mentions(words)
        mentions = tuple(dict.fromkeys(category for _, category in found))
        if not found:
            return CategoryMatch(None, mentions, words)
        head = [category for start, category in found if start < self._head_end(words)]
        return CategoryMatch(head[-1] if head else found[0][1], mentions, words)

    def _mentions(self, words: tuple[str, ...]) -> list[tuple[int, str]]:
        """(start, category) of each longest phrase match, scanning left to right."""
        found, i = [], 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                category = self.phrases.get(words[i : i + size])
                if category is not None:
                    found.append((i, category))
                    i += size
                    break
            else:
                i += 1
        return found

    def _head_end(self, words: tuple[str, ...]) -> int:
        """Index of the first context word ("for", "with", ...) after the first word."""
        for i, word in enumerate(words[1:], start=1):
            if word in self.head_breaks:
                return i
        return len(words)
