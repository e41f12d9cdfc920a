"""One ABO listing object -> a clean `Listing`, or `Rejected` with the reason.

ABO text fields are lists of `{"language_tag": ..., "value": ...}`, one entry per language
(and per value, for multi-valued fields such as keywords). We take the first configured
language a field has and fall back to any language rather than drop the listing; entries
without a tag are language-neutral. HTML is stripped and every text is bounded in length,
so one pathological listing cannot bloat the index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from mars_core.catalogue.quarantine import Reason, Rejected
from mars_core.config import DataConfig

HIDDEN_ELEMENTS = frozenset({"script", "style", "template", "noscript"})
KEYWORD_SPLIT = re.compile(r"[,;|]")
TO_CM = {"centimeters": 1.0, "millimeters": 0.1, "meters": 100.0, "inches": 2.54, "feet": 30.48}
TO_KG = {"kilograms": 1.0, "grams": 0.001, "pounds": 0.45359237, "ounces": 0.028349523}


@dataclass(frozen=True)
class Listing:
    """The parts of an ABO listing the catalogue keeps, cleaned and bounded."""

    item_id: str
    domain: str
    name: str
    language: str  # tag the name was taken in ("" when untagged)
    product_type: str
    category: str
    brand: str | None
    color: str | None  # standardized value when the listing has one
    color_label: str | None  # the listing's own wording ("Navy Blue")
    material: str | None
    style: str | None
    keywords: tuple[str, ...]
    bullets: tuple[str, ...]
    description: str | None
    main_image_id: str
    other_image_ids: tuple[str, ...]
    node: str | None
    length_cm: float | None
    width_cm: float | None
    height_cm: float | None
    weight_kg: float | None

    @property
    def key(self) -> str:
        return listing_key(self.item_id, self.domain)


def listing_key(item_id: str, domain: str) -> str:
    """The catalogue key: an item is unique per marketplace domain in ABO."""
    return f"{item_id}@{domain}"


class _TextOnly(HTMLParser):
    """The text a browser would show: tags dropped, entities decoded, and the contents of
    <script>/<style> (code, not words) left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.hidden += tag in HIDDEN_ELEMENTS
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in HIDDEN_ELEMENTS and self.hidden > 0
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def strip_html(value: str) -> str:
    """Visible text of an HTML fragment; run twice, so markup hidden behind entities
    (`&lt;script&gt;`) is parsed as markup too, not kept as text."""
    for _ in range(2):
        parser = _TextOnly()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
        if "<" not in value:
            break
    return value


def clean_text(value: str, limit: int) -> str:
    """HTML stripped (`strip_html`), whitespace collapsed, cut at a word within `limit`."""
    text = " ".join(strip_html(value).split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-")


def _entries(record: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The field's entries that carry a usable value (malformed shapes count as absent)."""
    entries = record.get(field)
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("value"), str | int | float)
        and str(entry["value"]).strip()
    ]


def pick_language(entries: list[dict[str, Any]], languages: list[str]) -> str | None:
    """First preferred tag present; else the first tag there is; None = only untagged values."""
    tags = [entry.get("language_tag") for entry in entries if entry.get("language_tag")]
    for language in languages:
        if language in tags:
            return language
    return tags[0] if tags else None


def texts(record: dict[str, Any], field: str, languages: list[str]) -> tuple[list[dict], str]:
    """Entries of `field` in its best language (plus untagged ones) and that language."""
    entries = _entries(record, field)
    language = pick_language(entries, languages)
    chosen = [e for e in entries if e.get("language_tag") in (language, None)]
    return chosen, language or ""


def first_text(record: dict[str, Any], field: str, languages: list[str], limit: int) -> str | None:
    chosen, _ = texts(record, field, languages)
    values = [clean_text(str(entry["value"]), limit) for entry in chosen]
    return next((value for value in values if value), None)


def joined_text(record: dict[str, Any], field: str, languages: list[str], limit: int) -> str | None:
    """All distinct values in the best language, joined ("Wood, Metal")."""
    chosen, _ = texts(record, field, languages)
    values = dict.fromkeys(clean_text(str(entry["value"]), limit) for entry in chosen)
    return clean_text(", ".join(v for v in values if v), limit) or None


def color_of(
    record: dict[str, Any], languages: list[str], limit: int
) -> tuple[str | None, str | None]:
    """(standardized colour, the listing's wording); ABO puts the former in standardized_values."""
    chosen, _ = texts(record, "color", languages)
    for entry in chosen:
        label = clean_text(str(entry["value"]), limit) or None
        standard = entry.get("standardized_values")
        if isinstance(standard, list) and standard and isinstance(standard[0], str):
            return clean_text(standard[0], limit) or label, label
        return label, label
    return None, None


def keywords_of(record: dict[str, Any], data: DataConfig) -> tuple[str, ...]:
    """Distinct keywords in the best language; values holding comma lists are split."""
    chosen, _ = texts(record, "item_keywords", data.languages)
    found: dict[str, None] = {}
    for entry in chosen:
        for part in KEYWORD_SPLIT.split(str(entry["value"])):
            keyword = clean_text(part, data.max_keyword_chars).lower()
            if keyword:
                found.setdefault(keyword)
    return tuple(found)[: data.max_keywords]


def _measure(value: Any, units: dict[str, float]) -> float | None:
    """A `{value, unit, normalized_value}` measure in our unit (normalized one preferred)."""
    if not isinstance(value, dict):
        return None
    for candidate in (value.get("normalized_value"), value):
        if not isinstance(candidate, dict):
            continue
        amount, unit = candidate.get("value"), str(candidate.get("unit", "")).lower()
        if isinstance(amount, int | float) and unit in units:
            return round(float(amount) * units[unit], 2)
    return None


def dimensions_cm(record: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    dims = record.get("item_dimensions")
    if not isinstance(dims, dict):
        return None, None, None
    return tuple(_measure(dims.get(side), TO_CM) for side in ("length", "width", "height"))  # type: ignore[return-value]


def weight_kg(record: dict[str, Any]) -> float | None:
    weights = record.get("item_weight")
    if isinstance(weights, list) and weights:
        return _measure(weights[0], TO_KG)
    return _measure(weights, TO_KG)


def node_path(record: dict[str, Any]) -> str | None:
    """The first browse-node path, e.g. "/Categories/Home & Kitchen/Furniture/..."."""
    nodes = record.get("node")
    if isinstance(nodes, list):
        for node in nodes:
            if isinstance(node, dict) and isinstance(node.get("node_name"), str):
                return node["node_name"].strip() or None
    return None


def _product_type(record: dict[str, Any]) -> str | None:
    entries = record.get("product_type")
    if isinstance(entries, str):
        return entries.strip() or None
    values = [str(entry["value"]).strip() for entry in _entries(record, "product_type")]
    return next((value for value in values if value), None)


def _image_ids(record: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    main = record.get("main_image_id")
    main = main.strip() if isinstance(main, str) and main.strip() else None
    others = record.get("other_image_id")
    if not isinstance(others, list):
        others = []
    return main, tuple(i for i in dict.fromkeys(others) if isinstance(i, str) and i and i != main)


def _identity(record: dict[str, Any]) -> tuple[str, str]:
    item_id, domain = record.get("item_id"), record.get("domain_name")
    if not (isinstance(item_id, str) and item_id.strip()):
        raise Rejected(Reason.MALFORMED_RECORD, "no item_id string")
    if not (isinstance(domain, str) and domain.strip()):
        raise Rejected(Reason.MALFORMED_RECORD, "no domain_name string")
    return item_id.strip(), domain.strip()


def record_key(record: dict[str, Any]) -> str | None:
    """The key of a raw record if it has one (for quarantine rows of rejected records)."""
    try:
        return listing_key(*_identity(record))
    except Rejected:
        return None


def parse_listing(record: dict[str, Any], data: DataConfig) -> Listing:
    """A clean Listing, or Rejected: malformed record, no name, no/unmapped category, no image."""
    item_id, domain = _identity(record)
    name_entries, language = texts(record, "item_name", data.languages)
    name = next(
        (n for e in name_entries if (n := clean_text(str(e["value"]), data.max_name_chars))), None
    )
    if name is None:
        raise Rejected(Reason.NO_NAME, "item_name has no value in any language")
    product_type = _product_type(record)
    if product_type is None:
        raise Rejected(Reason.NO_CATEGORY, "no product_type")
    category = data.category_map.get(product_type)
    if category is None:
        raise Rejected(Reason.UNMAPPED_CATEGORY, product_type)
    main_image, other_images = _image_ids(record)
    if main_image is None:
        raise Rejected(Reason.NO_IMAGE, "no main_image_id")
    languages, limit = data.languages, data.max_text_chars
    bullets, _ = texts(record, "bullet_point", languages)
    color, color_label = color_of(record, languages, data.max_name_chars)
    length, width, height = dimensions_cm(record)
    return Listing(
        item_id=item_id,
        domain=domain,
        name=name,
        language=language,
        product_type=product_type,
        category=category,
        brand=first_text(record, "brand", languages, data.max_name_chars),
        color=color,
        color_label=color_label,
        material=joined_text(record, "material", languages, data.max_name_chars),
        style=joined_text(record, "style", languages, data.max_name_chars),
        keywords=keywords_of(record, data),
        bullets=tuple(
            text
            for e in bullets[: data.max_bullets]
            if (text := clean_text(str(e["value"]), limit))
        ),
        description=first_text(record, "product_description", languages, limit),
        main_image_id=main_image,
        other_image_ids=other_images,
        node=node_path(record),
        length_cm=length,
        width_cm=width,
        height_cm=height,
        weight_kg=weight_kg(record),
    )
