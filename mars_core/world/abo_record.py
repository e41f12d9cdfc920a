"""A generated product as an ABO listing: multi-language fields, measures, keywords that say
where it goes, and a browse node, as real listings carry them."""

from __future__ import annotations

import random

from mars_core.world.truth import Product
from mars_core.world.vocab import CATEGORY_BY_TYPE, Category

HOME_DOMAIN, TWIN_DOMAIN, FOREIGN_DOMAIN = "amazon.com", "amazon.co.uk", "amazon.de"
DOMAIN_LANGUAGE = {HOME_DOMAIN: "en_US", TWIN_DOMAIN: "en_GB", FOREIGN_DOMAIN: "de_DE"}
DOMAIN_COUNTRY = {HOME_DOMAIN: "US", TWIN_DOMAIN: "GB", FOREIGN_DOMAIN: "DE"}


def _text(language: str, value: object) -> dict:
    return {"language_tag": language, "value": value}


def _measure(value: float, unit: str, normal_unit: str, factor: float) -> dict:
    normal = {"unit": normal_unit, "value": round(value * factor, 2)}
    return {"normalized_value": normal, "unit": unit, "value": round(value, 2)}


def listing_record(product: Product, domain: str, rng: random.Random) -> dict:
    """The product as an ABO listing on `domain` (multi-language fields, as ABO has them)."""
    language = DOMAIN_LANGUAGE[domain] if not product.foreign_name else "de_DE"
    category, style = product.category, product.style.title()
    title = (
        f"{product.brand} {style} {product.colour_label} {product.material} "
        f"{category.noun.title()}, {product.suffix}"
    )
    names = [_text(language, title)]
    if product.foreign_name:
        names = [_text("de_DE", f"{product.brand} {category.noun_de} {product.colour_label}")]
    elif rng.random() < 0.2:  # a German name listed first: the preference must pick English
        names.insert(
            0, _text("de_DE", f"{product.brand} {category.noun_de} {product.colour_label}")
        )
    length, width, height = (size * rng.uniform(0.9, 1.1) for size in category.size_cm)
    kilograms = max(0.5, length * width * height / 40_000)
    keywords = [
        category.noun,
        f"{product.style} {category.noun}",
        f"{product.colour} {category.noun}",
    ]
    keywords += setting_keywords(category)
    return {
        "item_id": product.item_id,
        "domain_name": domain,
        "marketplace": "Amazon",
        "country": DOMAIN_COUNTRY[domain],
        "brand": [_text(language, product.brand)],
        "item_name": names,
        "product_type": [{"value": category.product_type}],
        "color": [
            {
                "language_tag": language,
                "standardized_values": [product.colour.title()],
                "value": product.colour_label,
            }
        ],
        "material": [_text(language, product.material)],
        "style": [_text(language, style)],
        "item_keywords": [_text(language, keyword) for keyword in keywords],
        "bullet_point": [
            _text(language, f"{product.material} construction with a {product.style} finish"),
            _text(language, f"Size {length:.0f} x {width:.0f} x {height:.0f} cm"),
        ],
        "product_description": [
            _text(
                language,
                f"<p>A <b>{product.style}</b> {category.noun} in {product.colour_label}.</p>"
                "<ul><li>Easy to assemble</li></ul>&amp; built to last.",
            )
        ],
        "node": [{"node_id": _node_id(category), "node_name": category.node}],
        "item_dimensions": {
            "length": _measure(length, "centimeters", "inches", 1 / 2.54),
            "width": _measure(width, "centimeters", "inches", 1 / 2.54),
            "height": _measure(height, "centimeters", "inches", 1 / 2.54),
        },
        "item_weight": [_measure(kilograms, "kilograms", "pounds", 1 / 0.45359237)],
        "model_year": [{"value": rng.randint(2016, 2021)}],
        "main_image_id": product.image_ids[0],
        "other_image_id": [product.image_ids[1]],
    }


def setting_keywords(category: Category) -> list[str]:
    """What listings say of where a product goes: rooms for indoor products ("bedroom
    furniture"), outdoor places for outdoor ones, both for products made for either."""
    if category.setting == "any":
        return [f"indoor/outdoor {category.noun}"]
    return [f"{room.replace('_', ' ')} furniture" for room in category.rooms[:2]]


def _node_id(category: Category) -> int:
    """Browse nodes by product type, outdoor versions in a range of their own."""
    number = 1000 + list(CATEGORY_BY_TYPE).index(category.product_type)
    return number if category == CATEGORY_BY_TYPE[category.product_type] else number + 500
