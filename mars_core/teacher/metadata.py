"""The offline teacher: labels from what a real catalogue and room set carry, nothing more.

It knows the room's type (its class folder, `rooms.parquet` `room_type`), which categories
belong in which room type and which room types are outdoors (`teacher.room_fit`,
`teacher.outdoor_rooms`), and the product's category and listing text (name, description,
keywords) read for setting words (`teacher.outdoor_words`, `teacher.indoor_words`). It never
reads a generated world's ground truth, so its labels on the generated world measure what it
would do on a user's own ABO-format catalogue with a class-folder room set.

Real catalogues put indoor and outdoor versions of a product type in one category (a teak
patio chair is a `CHAIR`), so the rules run in this order:

1. the product's setting: what its listing says when only one kind of setting word appears,
   else what its category implies (listed under outdoor room types only, or indoor ones
   only), else unknown (a listing with both kinds, "indoor/outdoor rug", of a category listed
   on both sides). A setting that clashes with the room's is a misfit, `score_wrong_setting`,
   whatever `room_fit` says ("an indoor chair does not belong outdoors by the pool (its
   listing says 'dining room')");
2. `room_fit` is a closed table: a category it lists for this room type fits (`score_fits`);
   one it lists only for other room types is wrong here (`score_wrong_room`);
3. a category (or room type) the table never mentions is `score_unknown`: nothing says, and
   the dataset card counts those pairs so the table's hole shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mars_core.agent.prompt import answer_text
from mars_core.config import TeacherConfig
from mars_core.teacher.base import Label, LabelRequest, Teacher

OUTDOOR, INDOOR = "outdoor", "indoor"
# Listing fields read for setting words.
TEXT_FIELDS = ("name", "description", "keywords")


@dataclass(frozen=True)
class Setting:
    """Where a product is meant to be, and what said so (for the rationale)."""

    where: str | None  # OUTDOOR, INDOOR or None (unknown)
    evidence: str | None  # the listing word that decided it; None when the category did


class MetadataTeacher(Teacher):
    """Rules over room type, category and listing text; deterministic, one attempt per pair."""

    def __init__(self, cfg: TeacherConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._outdoor_words = _word_pattern(cfg.outdoor_words)
        self._indoor_words = _word_pattern(cfg.indoor_words)
        self._category_settings = category_settings(cfg.room_fit, set(cfg.outdoor_rooms))

    def label(self, requests: Sequence[LabelRequest]) -> list[Label]:
        labels = []
        for request in requests:
            score, rationale = self.judge(request.pair["room_type"], request.product)
            raw = answer_text(score, rationale)
            labels.append(Label(score, rationale, raw, "ok", 1))
        return labels

    def judge(self, room_type: str, product: Mapping[str, Any]) -> tuple[float, str]:
        """(score, one-sentence rationale) for a product in a room of `room_type`."""
        cfg = self.cfg
        category = product["category"]
        noun = _words(category).lower()
        room_where = OUTDOOR if room_type in cfg.outdoor_rooms else INDOOR
        place = _place(room_type, room_where)
        setting = self.product_setting(product)
        if setting.where is not None and setting.where != room_where:
            why = f" (its listing says {setting.evidence!r})" if setting.evidence else ""
            thing = noun if noun.startswith(setting.where) else f"{setting.where} {noun}"
            return (
                cfg.score_wrong_setting,
                f"{_article(thing)} {thing} does not belong {place}{why}",
            )
        belongs = cfg.room_fit.get(room_type)
        if belongs is None:
            return cfg.score_unknown, f"nothing says what belongs {place}"
        if category in belongs:
            return cfg.score_fits, f"a {noun} belongs {place}"
        if category in self._category_settings:
            return cfg.score_wrong_room, f"a {noun} is not furniture for {_with_article(room_type)}"
        return cfg.score_unknown, f"nothing says whether a {noun} belongs {place}"

    def product_setting(self, product: Mapping[str, Any]) -> Setting:
        """The listing's setting words decide when only one kind appears, else the category."""
        text = _listing_text(product)
        outdoor = self._outdoor_words.search(text) if self._outdoor_words else None
        indoor = self._indoor_words.search(text) if self._indoor_words else None
        if outdoor and not indoor:
            return Setting(OUTDOOR, outdoor.group(0).lower())
        if indoor and not outdoor:
            return Setting(INDOOR, indoor.group(0).lower())
        return Setting(self._category_settings.get(product["category"]), None)


def category_settings(
    room_fit: Mapping[str, list[str]], outdoor: set[str]
) -> dict[str, str | None]:
    """Every category `room_fit` mentions -> OUTDOOR / INDOOR when every room type listing it
    is of that setting, None when it is listed on both sides (a chair, a planter)."""
    sides: dict[str, set[str]] = {}
    for room_type, categories in room_fit.items():
        for category in categories:
            sides.setdefault(category, set()).add(OUTDOOR if room_type in outdoor else INDOOR)
    return {category: next(iter(s)) if len(s) == 1 else None for category, s in sides.items()}


def _word_pattern(words: list[str]) -> re.Pattern[str] | None:
    """Whole words or phrases, case-insensitive, longest first (so `indoor use only` wins)."""
    if not words:
        return None
    phrases = sorted({" ".join(w.lower().split()) for w in words}, key=len, reverse=True)
    alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in phrases)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


def _listing_text(product: Mapping[str, Any]) -> str:
    parts = []
    for field in TEXT_FIELDS:
        value = product.get(field)
        if isinstance(value, str):
            parts.append(value)
        elif value is not None:
            parts.extend(str(v) for v in value)
    return " \n ".join(parts)


def _words(identifier: str) -> str:
    return identifier.replace("_", " ")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _with_article(room_type: str) -> str:
    words = _words(room_type)
    return f"{_article(words)} {words}"


def _place(room_type: str, where: str) -> str:
    """'in a bedroom' / 'outdoors by the pool'."""
    if where == OUTDOOR:
        return f"outdoors by the {_words(room_type)}"
    return f"in {_with_article(room_type)}"
