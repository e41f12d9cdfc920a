"""One ABO listing object -> a clean Listing: the real record's shape and every rejection."""

from __future__ import annotations

import dataclasses

import pytest
from support.abo_tree import REAL_LISTING, listing

from mars_core.catalogue.listing import clean_text, parse_listing, pick_language
from mars_core.catalogue.quarantine import Reason, Rejected


@pytest.fixture(scope="module")
def data(cfg):
    return cfg.data


def test_real_record_shape_is_read_in_full(data):
    parsed = parse_listing(REAL_LISTING, data)
    assert parsed.key == "B07HJZKG1V@amazon.com"
    # de_DE comes first in the record; the configured preference picks en_US.
    assert parsed.name == "Rivet Mid-Century Wood Platform Bed, Queen, Navy"
    assert parsed.language == "en_US"
    assert (parsed.product_type, parsed.category) == ("BED", "BED")
    assert (parsed.color, parsed.color_label) == ("Blue", "Navy Blue")
    assert parsed.material == "Wood, Metal"
    assert parsed.style == "Mid-Century"
    assert parsed.brand == "Rivet"
    assert parsed.keywords == ("bed frame", "platform bed", "queen bed")
    assert parsed.bullets == ("Solid rubberwood frame & slats", "No box spring needed")
    assert parsed.description == "A mid-century bed. Tapered legs & a low profile."
    assert parsed.node == "/Categories/Home & Kitchen/Furniture/Bedroom Furniture/Beds"
    assert (parsed.length_cm, parsed.width_cm, parsed.height_cm) == (203.2, 152.4, 101.6)
    assert parsed.weight_kg == pytest.approx(39.92, abs=0.01)
    # The main image is not repeated among the others.
    assert parsed.main_image_id == "81iZlv3bjpL"
    assert parsed.other_image_ids == ("71fY7r9GhsL", "61Qm2xkBnzL")


def test_any_language_is_the_fallback(data):
    record = listing(
        "B0JAPANESE",
        "img",
        item_name=[{"language_tag": "ja_JP", "value": "ベッド"}],
        brand=[{"language_tag": "ja_JP", "value": "リベット"}],
    )
    parsed = parse_listing(record, data)
    assert (parsed.name, parsed.language, parsed.brand) == ("ベッド", "ja_JP", "リベット")


def test_preference_order_and_untagged_values():
    entries = [{"language_tag": "fr_FR", "value": "a"}, {"language_tag": "en_GB", "value": "b"}]
    assert pick_language(entries, ["en_US", "en_GB"]) == "en_GB"
    assert pick_language(entries, ["de_DE"]) == "fr_FR"
    assert pick_language([{"value": "x"}], ["en_US"]) is None


def test_text_is_stripped_of_html_and_bounded(data):
    assert clean_text("<p>Soft&nbsp;<b>velvet</b></p>\n\n  seat", 100) == "Soft velvet seat"
    assert clean_text("&lt;script&gt;alert(1)&lt;/script&gt; ok", 100) == "ok"
    assert clean_text("a<style>p{color:red}</style> b & c < d", 100) == "a b & c < d"
    assert clean_text("one two three four", 12) == "one two"
    bounded = dataclasses.replace(data, max_name_chars=20, max_text_chars=30, max_keywords=2)
    record = listing(
        "B0LONGTEXT",
        "img",
        item_name=[{"language_tag": "en_US", "value": "word " * 100}],
        product_description=[{"language_tag": "en_US", "value": "<p>" + "x " * 1000 + "</p>"}],
    )
    parsed = parse_listing(record, bounded)
    assert len(parsed.name) <= 20 and len(parsed.description) <= 30
    assert len(parsed.keywords) == 2


def test_a_script_in_a_listing_never_reaches_the_catalogue_text(data):
    script = "<script>alert(1)</script>"
    record = listing(
        "B0SCRIPT",
        "img",
        item_name=[{"language_tag": "en_US", "value": f"Bed {script}"}],
        product_description=[{"language_tag": "en_US", "value": f"<p>Soft</p>{script}"}],
        bullet_point=[{"language_tag": "en_US", "value": f"{script}Oak"}],
    )
    parsed = parse_listing(record, data)
    texts = [parsed.name, parsed.description, *parsed.bullets]
    assert texts == ["Bed", "Soft", "Oak"]


def test_product_type_goes_through_the_category_map(data):
    record = listing("B0STOOL001", "img", product_type=[{"value": "STOOL_SEATING"}])
    parsed = parse_listing(record, data)
    assert (parsed.product_type, parsed.category) == ("STOOL_SEATING", "STOOL")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"item_id": None}, Reason.MALFORMED_RECORD),
        ({"domain_name": 7}, Reason.MALFORMED_RECORD),
        ({"item_name": None}, Reason.NO_NAME),
        ({"item_name": [{"language_tag": "en_US", "value": "  <br>  "}]}, Reason.NO_NAME),
        ({"item_name": "not a list"}, Reason.NO_NAME),
        ({"product_type": None}, Reason.NO_CATEGORY),
        ({"product_type": [{"value": ""}]}, Reason.NO_CATEGORY),
        ({"product_type": [{"value": "CELLULAR_PHONE_CASE"}]}, Reason.UNMAPPED_CATEGORY),
        ({"main_image_id": None}, Reason.NO_IMAGE),
        ({"main_image_id": ""}, Reason.NO_IMAGE),
    ],
)
def test_unusable_listings_are_rejected_with_their_reason(data, changes, reason):
    with pytest.raises(Rejected) as rejected:
        parse_listing(listing("B0REJECTED", "img") | changes, data)
    assert rejected.value.reason is reason
