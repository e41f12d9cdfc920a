"""Train/test splits: grouped by room photo and product image, stratified, seeded."""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mars_core.catalogue.schema import CATALOGUE_FILE, SPLITS_FILE, SPLITS_SCHEMA
from mars_core.catalogue.splits import UnionFind, make_splits, validation_split
from mars_core.infra.errors import UserInputError


def test_no_room_and_no_product_image_on_both_sides(world):
    splits = pq.read_table(world.out_dir / SPLITS_FILE)
    assert splits.schema.equals(SPLITS_SCHEMA)
    rows = splits.to_pylist()
    sides = defaultdict(set)
    for row in rows:
        sides[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    catalogue = pq.read_table(world.out_dir / CATALOGUE_FILE).to_pylist()
    split_of = {row["id"]: row["split"] for row in rows if row["kind"] == "product"}
    images = defaultdict(set)
    for product in catalogue:
        for image in [product["image_id"], *product["other_image_ids"]]:
            images[image].add(split_of[product["key"]])
    assert all(len(s) == 1 for s in images.values())
    # Twins (same item on two domains, same images) exist and share a side.
    twins = [p for p in catalogue if p["domain"] == "amazon.co.uk"]
    assert twins
    for twin in twins:
        assert split_of[twin["key"]] == split_of[f"{twin['item_id']}@amazon.com"]


def test_every_stratum_is_on_both_sides(world):
    rows = pq.read_table(world.out_dir / SPLITS_FILE).to_pylist()
    strata = defaultdict(set)
    for row in rows:
        strata[(row["kind"], row["stratum"])].add(row["split"])
    assert all(sides == {"train", "test"} for sides in strata.values())
    test_rooms = [r for r in rows if r["kind"] == "room" and r["split"] == "test"]
    rooms = [r for r in rows if r["kind"] == "room"]
    assert 0.2 <= len(test_rooms) / len(rooms) <= 0.4


def test_assignment_is_seeded_and_order_free(world):
    catalogue = pq.read_table(world.out_dir / CATALOGUE_FILE)
    rooms = pq.read_table(world.out_dir / "rooms.parquet")
    base = make_splits(catalogue, rooms, 0.25, seed=0)
    shuffled = make_splits(
        catalogue.take(list(reversed(range(catalogue.num_rows)))), rooms, 0.25, 0
    )
    assert shuffled.equals(base)
    assert not make_splits(catalogue, rooms, 0.25, seed=1).equals(base)


def test_rooms_with_identical_bytes_share_a_group():
    rooms = pa.table(
        {
            "room_id": ["Bedroom/a.jpg", "Bedroom/b.jpg", "Bedroom/c.jpg"],
            "room_type": ["bedroom"] * 3,
            "content_hash": ["same", "same", "other"],
        }
    )
    catalogue = pa.table(
        {
            "key": pa.array([], pa.string()),
            "image_id": pa.array([], pa.string()),
            "other_image_ids": pa.array([], pa.list_(pa.string())),
            "category": pa.array([], pa.string()),
        }
    )
    rows = make_splits(catalogue, rooms, 0.5, seed=0).to_pylist()
    split = {row["id"]: row["split"] for row in rows}
    assert split["Bedroom/a.jpg"] == split["Bedroom/b.jpg"] != split["Bedroom/c.jpg"]


def test_union_find_joins_chains():
    groups = UnionFind()
    groups.union("a", "b")
    groups.union("c", "d")
    groups.union("b", "d")
    assert len({groups.find(x) for x in "abcd"}) == 1
    assert groups.find("e") == "e"


def test_validation_holds_out_rooms_and_image_groups_of_every_category(world):
    catalogue = pq.read_table(world.out_dir / CATALOGUE_FILE)
    products = catalogue.to_pylist()
    rooms = pq.read_table(world.out_dir / "rooms.parquet")["room_id"].to_pylist()
    pairs = [(room, product["key"]) for room in rooms[:20] for product in products]
    held_out = validation_split(pairs, catalogue, 0.25, 0.2, seed=0)
    assert len(held_out.rooms) == 5
    categories = {p["category"] for p in products}
    assert {p["category"] for p in products if p["key"] in held_out.products} == categories
    assert 0.1 <= len(held_out.products) / len(products) <= 0.3
    twins = [p for p in products if p["domain"] == "amazon.co.uk"]
    for twin in twins:  # same images: held out together or not at all
        other = f"{twin['item_id']}@amazon.com"
        assert (twin["key"] in held_out.products) == (other in held_out.products)
    assert held_out.holds(next(iter(held_out.rooms)), products[0]["key"])
    kept = next(p["key"] for p in products if p["key"] not in held_out.products)
    assert not held_out.holds(next(r for r in rooms if r not in held_out.rooms), kept)
    assert validation_split(reversed(pairs), catalogue, 0.25, 0.2, seed=0) == held_out
    assert validation_split(pairs, catalogue, 0.25, 0.2, seed=1) != held_out
    one_each = {}
    for product in products:
        one_each.setdefault(product["category"], product["key"])
    lonely = [(room, key) for room in rooms[:4] for key in one_each.values()]
    with pytest.raises(UserInputError, match="no category with two products"):
        validation_split(lonely, catalogue, 0.25, 0.2, seed=0)
