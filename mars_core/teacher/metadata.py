"""The offline teacher: labels from what a real catalogue and room set carry, nothing more.

It knows the room's type (its class folder, `rooms.parquet` `room_type`), which categories
belong in which room type and which room types are outdoors (`teacher.room_fit`,
`teacher.outdoor_rooms`), and the product's category and listing text (name, description,
keywords) read for setting words (`teacher.outdoor_words`, `teacher.indoor_words`); with
colour harmony on, the room photo's and the product's colours too. It never
reads a generated world's ground truth, so its labels on the generated world measure what it
would do on a user's own ABO-format catalogue with a class-folder room set.

Real catalogues put indoor and outdoor versions of a product type in one category (a teak
patio chair is a `CHAIR`), so the rules run in this order:

1. the product's setting: what its title says when only one kind of setting word appears
   there, else what the rest of its listing (keywords, description, browse node) says when
   only one kind appears; a word after "not" counts for the other setting ("not suitable for
   outdoor use" says indoor). A listing with both kinds ("indoor/outdoor rug") leaves it to
   its category: listed under outdoor room types only, or indoor ones only, else unknown. A
   listing that names no setting at all, of a category listed on both sides, is
   `teacher.unmarked_setting` (indoor: outdoor furniture is sold as outdoor). A setting that
   clashes with the room's is a misfit, `score_wrong_setting`, whatever `room_fit` says ("an
   indoor chair does not belong outdoors by the pool (its listing says 'dining room')");
2. `room_fit` is a closed table: a category it lists for this room type fits (`score_fits`);
   one it lists only for other room types is wrong here (`score_wrong_room`);
3. a category (or room type) the table never mentions is `score_unknown`: nothing says, and
   the dataset card counts those pairs so the table's hole shows;
4. with `teacher.colour_harmony` (off by default), colour grades the fits
   (`teacher.colours`, `mars_core.teacher.colour`): a product whose colour is one of the room
   photo's colours scores `score_colour_match` ("a blue bed belongs in a bedroom and matches
   its blue tones"), one that clashes `score_colour_clash` ("... but clashes with its red and
   beige tones"); where either colour cannot be read, `score_fits` and no word of colour. A
   misfit keeps its low score whatever its colour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mars_core.config import TeacherConfig
from mars_core.prompt import answer_text
from mars_core.teacher.base import Label, LabelRequest, Teacher
from mars_core.teacher.colour import ColourJudge
from mars_core.teacher.words import phrase, word_pattern

OUTDOOR, INDOOR = "outdoor", "indoor"
OTHER = {OUTDOOR: INDOOR, INDOOR: OUTDOOR}
# Listing fields read for setting words after the title (`name`), which speaks first.
REST_FIELDS = ("keywords", "description", "node")
# "not", "no" or "never" up to three words before a setting word turns it around.
NEGATED = re.compile(r"\b(?:not|no|never)\b(?:\W+\w+){0,3}?\W+$", re.IGNORECASE)
NEGATION_WINDOW = 40  # characters looked at before a setting word


@dataclass(frozen=True)
class Setting:
    """Where a product is meant to be, and what said so (the rationale's parenthesis)."""

    where: str | None  # OUTDOOR, INDOOR or None (unknown)
    evidence: str | None  # "its listing says 'patio'"; None when its category decided


class MetadataTeacher(Teacher):
    """Rules over room type, category and listing text; deterministic, one attempt per pair."""

    def __init__(self, cfg: TeacherConfig, max_image_pixels: int) -> None:
        self.cfg = cfg
        judged = cfg.colour_harmony and cfg.colours
        self.colour = ColourJudge(cfg, max_image_pixels) if judged else None
        self.name = cfg.name
        self._outdoor_words = word_pattern(cfg.outdoor_words)
        self._indoor_words = word_pattern(cfg.indoor_words)
        self._category_settings = _category_settings(cfg.room_fit, set(cfg.outdoor_rooms))

    def label(self, requests: Sequence[LabelRequest]) -> list[Label]:
        labels = []
        for request in requests:
            score, rationale = self.judge(
                request.pair["room_type"], request.product, request.room_path
            )
            raw = answer_text(score, rationale)
            labels.append(Label(score, rationale, raw, "ok", 1))
        return labels

    def judge(
        self, room_type: str, product: Mapping[str, Any], room_path: str | None = None
    ) -> tuple[float, str]:
        """(score, one-sentence rationale) for a product in a room of `room_type` (whose photo
        at `room_path`, when given, is read for colour harmony among fits)."""
        cfg = self.cfg
        category = product["category"]
        noun = _words(category).lower()
        room_where = OUTDOOR if room_type in cfg.outdoor_rooms else INDOOR
        place = _place(room_type, room_where)
        setting = self.product_setting(product)
        if setting.where is not None and setting.where != room_where:
            why = f" ({setting.evidence})" if setting.evidence else ""
            thing = noun if noun.startswith(setting.where) else f"{setting.where} {noun}"
            return (
                cfg.score_wrong_setting,
                f"{_article(thing)} {thing} does not belong {place}{why}",
            )
        belongs = cfg.room_fit.get(room_type)
        if belongs is None:
            return cfg.score_unknown, f"nothing says what belongs {place}"
        if category in belongs:
            return self._fits(noun, place, product, room_path)
        if category in self._category_settings:
            thing = f"{_article(noun)} {noun}"
            return cfg.score_wrong_room, f"{thing} is not furniture for {_with_article(room_type)}"
        return cfg.score_unknown, f"nothing says whether {_article(noun)} {noun} belongs {place}"

    def _fits(
        self, noun: str, place: str, product: Mapping[str, Any], room_path: str | None
    ) -> tuple[float, str]:
        """A product that belongs: graded by colour harmony where both colours can be read."""
        harmony = self.colour.judge(room_path, product) if self.colour and room_path else None
        if harmony is None:
            return self.cfg.score_fits, f"{_article(noun)} {noun} belongs {place}"
        thing = f"{harmony.product} {noun}"
        if harmony.matches:
            return (
                self.cfg.score_colour_match,
                f"{_article(thing)} {thing} belongs {place} and matches its {harmony.product} "
                "tones",
            )
        tones = " and ".join(harmony.room[:2])
        return (
            self.cfg.score_colour_clash,
            f"{_article(thing)} {thing} belongs {place} but clashes with its {tones} tones",
        )

    def product_setting(self, product: Mapping[str, Any]) -> Setting:
        """The title's setting words, else the rest of the listing's, decide when only one
        kind appears; else the category; a listing naming none, `teacher.unmarked_setting`."""
        title = self._said(_text(product, ("name",)))
        rest = self._said(_text(product, REST_FIELDS))
        decisive = title if title else rest
        if len(decisive) == 1:
            [(where, words)] = decisive.items()
            return Setting(where, f"its listing says {words!r}")
        category = product["category"]
        where = self._category_settings.get(category)
        if where is None and not (title or rest) and category in self._category_settings:
            unmarked = self.cfg.unmarked_setting
            return Setting(unmarked, f"its listing names no {OTHER[unmarked]} use")
        return Setting(where, None)

    def _said(self, text: str) -> dict[str, str]:
        """Setting -> the first word in `text` that says it (a negated word says the other)."""
        said: dict[str, str] = {}
        for where, pattern in ((OUTDOOR, self._outdoor_words), (INDOOR, self._indoor_words)):
            for match in pattern.finditer(text) if pattern else ():
                before = text[max(0, match.start() - NEGATION_WINDOW) : match.start()]
                negated = NEGATED.search(before)
                words = (before[negated.start() :] if negated else "") + match.group(0)
                said.setdefault(OTHER[where] if negated else where, phrase(words))
        return said


def _category_settings(
    room_fit: Mapping[str, list[str]], outdoor: set[str]
) -> dict[str, str | None]:
    """Every category `room_fit` mentions -> OUTDOOR / INDOOR when every room type listing it
    is of that setting, None when it is listed on both sides (a chair, a planter)."""
    sides: dict[str, set[str]] = {}
    for room_type, categories in room_fit.items():
        for category in categories:
            sides.setdefault(category, set()).add(OUTDOOR if room_type in outdoor else INDOOR)
    return {category: next(iter(s)) if len(s) == 1 else None for category, s in sides.items()}


def _text(product: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    parts = []
    for field in fields:
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
