"""The generated world: ABO + House Rooms formats, deterministic, with learnable pixel cues and
ground truth that encodes function first (the blue bed by the pool is wrong)."""

from __future__ import annotations

import dataclasses
import filecmp
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    QUARANTINE_FILE,
    ROOMS_FILE,
)
from mars_core.world.generate import generate_world, sample_products
from mars_core.world.truth import Room, judge
from mars_core.world.vocab import CATEGORIES, OUTDOOR_ROOMS, ROOM_TYPES


def table(world, name):
    return pq.read_table(world.out_dir / name).to_pylist()


def test_default_world_has_the_configured_size(world):
    size = world.data.world
    catalogue, rooms = table(world, CATALOGUE_FILE), table(world, ROOMS_FILE)
    assert len(catalogue) == size.products
    assert len(rooms) == size.rooms_per_type * len(ROOM_TYPES)
    assert {row["room_type"] for row in rooms} == set(ROOM_TYPES)
    categories = {world.data.category_map[c.product_type] for c in CATEGORIES}
    assert {row["category"] for row in catalogue} == categories
    assert {row["category"] for row in catalogue} >= {"OUTDOOR_LOUNGE_CHAIR", "PATIO_TABLE"}
    # Real-record shape: twins on a second domain, German-only names kept via the fallback.
    assert {row["domain"] for row in catalogue} == {"amazon.com", "amazon.co.uk", "amazon.de"}
    assert {row["language"] for row in catalogue} == {"en_US", "en_GB", "de_DE"}
    assert all(row["node"] and row["height_cm"] and row["weight_kg"] for row in catalogue)


def test_broken_records_show_every_reason_once(world):
    reasons = defaultdict(int)
    for row in table(world, QUARANTINE_FILE):
        reasons[row["reason"]] += 1
    assert set(reasons) >= {"malformed_json", "duplicate_key", "image_undecodable", "truth_orphan"}
    assert reasons["unknown_room_class"] == reasons["room_undecodable"] == 1


def test_ground_truth_is_complete_and_function_first(world):
    truth = table(world, GROUND_TRUTH_FILE)
    catalogue, rooms = table(world, CATALOGUE_FILE), table(world, ROOMS_FILE)
    assert len(truth) == len(catalogue) * len(rooms)
    assert {row["grade"] for row in truth} == {0, 1, 2, 3}
    for row in truth:
        assert row["fits"] == (row["grade"] > 0)
        if row["fits"]:
            assert row["grade"] == 1 + row["style_match"] + row["color_match"]
        assert row["trap"] == (not row["fits"] and row["color_match"])
    # Every room has something that fits, and every category fits somewhere.
    assert {row["room_id"] for row in truth if row["fits"]} == {r["room_id"] for r in rooms}
    assert {row["category"] for row in truth if row["fits"]} == {r["category"] for r in catalogue}


def test_the_blue_bed_by_the_pool_is_the_explicit_trap(world):
    truth = table(world, GROUND_TRUTH_FILE)
    colours = {row["key"]: row["color"] for row in table(world, CATALOGUE_FILE)}
    pool_beds = [r for r in truth if r["room_type"] == "pool" and r["category"] == "BED"]
    blue = [r for r in pool_beds if colours[r["key"]] == "Blue"]
    assert blue and len(blue) < len(pool_beds)
    for row in blue:
        assert (row["grade"], row["fits"], row["trap"]) == (0, False, True)
        assert row["reason"] == "indoor furniture in an outdoor setting"
    loungers = [
        r for r in truth if r["room_type"] == "pool" and r["category"] == "OUTDOOR_LOUNGE_CHAIR"
    ]
    assert all(r["fits"] for r in loungers)
    indoor = [
        r for r in truth if r["room_type"] not in OUTDOOR_ROOMS and r["category"] == "PATIO_TABLE"
    ]
    assert {r["reason"] for r in indoor} == {"outdoor furniture in an indoor room"}


def mean_colour(path, background_cut=245):
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float).reshape(-1, 3)
    return pixels[pixels.min(axis=1) < background_cut].mean(axis=0)


def test_pixels_carry_the_cues(world):
    """Pool photos are blue, blue beds are blue: colour alone says the trap 'looks right'."""
    rooms = table(world, ROOMS_FILE)
    catalogue = table(world, CATALOGUE_FILE)
    pools = [mean_colour(r["path"]) for r in rooms if r["room_type"] == "pool"]
    others = [mean_colour(r["path"]) for r in rooms if r["room_type"] not in OUTDOOR_ROOMS]
    blueness = lambda rgb: rgb[2] - (rgb[0] + rgb[1]) / 2  # noqa: E731
    assert min(map(blueness, pools)) > np.median(list(map(blueness, others)))
    beds = [r for r in catalogue if r["category"] == "BED"]
    blue_beds = [mean_colour(r["image_path"]) for r in beds if r["color"] == "Blue"]
    red_beds = [mean_colour(r["image_path"]) for r in beds if r["color"] == "Red"]
    pool = np.mean(pools, axis=0)
    distance = lambda colours: np.mean([np.linalg.norm(c - pool) for c in colours])  # noqa: E731
    assert distance(blue_beds) < distance(red_beds)
    # Product shots are on white, at the configured size.
    shot = Image.open(beds[0]["image_path"])
    assert shot.size == (world.data.world.product_px,) * 2
    assert shot.getpixel((0, 0)) >= (240, 240, 240)


def test_generation_is_deterministic_from_the_seed(world, tmp_path):
    small = dataclasses.replace(world.data.world, products=40, rooms_per_type=1)
    data = dataclasses.replace(
        world.data,
        world=small,
        raw_dir=str(tmp_path / "a"),
        rooms_dir=str(tmp_path / "a/rooms"),
        truth_file=str(tmp_path / "a/truth/ground_truth.parquet"),
    )
    first = generate_world(data)
    assert first.generated and first.listings == 40
    again = generate_world(data)
    assert not again.generated  # same settings: the folder is left alone
    copy = dataclasses.replace(
        data,
        raw_dir=str(tmp_path / "b"),
        rooms_dir=str(tmp_path / "b/rooms"),
        truth_file=str(tmp_path / "b/truth/ground_truth.parquet"),
    )
    generate_world(copy)
    compare = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not compare.diff_files and not compare.left_only and not compare.right_only
    for sub in ("listings/metadata", "images/metadata", "rooms/Pool"):
        assert not filecmp.dircmp(tmp_path / "a" / sub, tmp_path / "b" / sub).diff_files
    assert pq.read_table(tmp_path / "a/truth/ground_truth.parquet").equals(
        pq.read_table(tmp_path / "b/truth/ground_truth.parquet")
    )
    other = generate_world(dataclasses.replace(data, seed=1))
    assert other.generated  # a new seed regenerates in place


def test_world_paths_must_stay_inside_raw_dir(world, tmp_path):
    data = dataclasses.replace(
        world.data, raw_dir=str(tmp_path / "raw"), rooms_dir=str(tmp_path / "elsewhere")
    )
    with pytest.raises(ValueError, match=r"data\.rooms_dir must lie inside data\.raw_dir"):
        generate_world(data)


SHARED = ("CHAIR", "TABLE", "SOFA", "LAMP", "RUG")


def test_shared_types_come_in_indoor_and_outdoor_versions_of_one_category(world):
    """As in real ABO: a patio chair is a CHAIR; its listing's words and its look say outdoor."""
    truth = table(world, GROUND_TRUTH_FILE)
    listings = {row["key"]: row for row in table(world, CATALOGUE_FILE)}
    for category in SHARED:
        by_room = defaultdict(list)
        for row in truth:
            if row["category"] == category:
                by_room[row["room_type"]].append(row)
        pool_fits = [r for r in by_room["pool"] if r["fits"]]
        assert pool_fits and len(pool_fits) < len(by_room["pool"])  # outdoor versions only
        for row in by_room["pool"]:
            text = " ".join([listings[row["key"]]["name"], *listings[row["key"]]["keywords"]])
            outdoor = "patio" in text.lower() or "outdoor" in text.lower()
            assert row["fits"] == outdoor, text
            if not row["fits"]:
                assert row["reason"] == "indoor furniture in an outdoor setting"
        # Both ways: the same outdoor products are misfits indoors.
        outdoor_keys = {r["key"] for r in pool_fits}
        indoor_rows = [
            r for r in truth if r["key"] in outdoor_keys and r["room_type"] not in OUTDOOR_ROOMS
        ]
        assert indoor_rows and not any(r["fits"] for r in indoor_rows)
        assert {r["reason"] for r in indoor_rows} == {"outdoor furniture in an indoor room"}
    # Every outdoor room has a fitting product of every shared type: requests are answerable.
    assert {(r["room_type"], r["category"]) for r in truth if r["fits"]} >= {
        (room, category) for room in OUTDOOR_ROOMS for category in SHARED
    }


def test_outdoor_versions_look_slatted(world):
    """The look differs too: white gaps cut across an outdoor version's silhouette."""
    truth = table(world, GROUND_TRUTH_FILE)
    outdoor = {r["key"] for r in truth if r["room_type"] == "pool" and r["fits"]}
    sofas = [r for r in table(world, CATALOGUE_FILE) if r["category"] == "SOFA"]

    def white_inside(path) -> float:
        pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
        rows = pixels[:, pixels.shape[1] // 2]  # the middle column, through the seat
        dark = np.flatnonzero(rows < 200)
        inside = rows[dark.min() : dark.max()]
        return float((inside > 235).mean())

    slatted = [white_inside(r["image_path"]) for r in sofas if r["key"] in outdoor]
    plain = [white_inside(r["image_path"]) for r in sofas if r["key"] not in outdoor]
    assert slatted and plain and min(slatted) > max(plain)


def test_the_old_shape_keeps_every_shared_type_indoors(world):
    """`data.world.shared_outdoor_types=false`: outdoors only in outdoor-only categories."""
    old = dataclasses.replace(world.data.world, shared_outdoor_types=False)
    shared = [p for p in sample_products(old, 0) if p.category.product_type in SHARED]
    assert shared and all(p.category.setting == "indoor" for p in shared)
    pool = Room("Pool/pool_000.jpg", "pool", "modern", ("blue", "beige"), "Pool/pool_000.jpg")
    assert not any(judge(pool, p).fits for p in shared)


def test_the_shared_type_shape_has_outdoor_furniture_only_inside_shared_types(world):
    """`data.world.outdoor_only_categories=false` (`data=shared_types`): no lounge chairs,
    patio tables or umbrellas of their own; what fits a pool is the outdoor version of a
    chair, table, sofa, lamp or rug (a teak patio chair is a CHAIR), or a planter. The truth
    is judged as ever: the same `judge`."""
    shape = dataclasses.replace(world.data.world, outdoor_only_categories=False)
    products = sample_products(shape, 0)
    types = {p.category.product_type for p in products}
    assert types == {c.product_type for c in CATEGORIES if c.setting != "outdoor"}
    pool = Room("Pool/pool_000.jpg", "pool", "modern", ("blue", "beige"), "Pool/pool_000.jpg")
    fitting = [p for p in products if judge(pool, p).fits]
    assert {p.category.product_type for p in fitting} == {*SHARED, "PLANTER"}
    for product_type in SHARED:  # the outdoor versions are a minority of their category
        kinds = [p for p in products if p.category.product_type == product_type]
        outdoor = [p for p in kinds if p.category.setting == "outdoor"]
        assert outdoor == [p for p in kinds if judge(pool, p).fits]
        assert 0 < len(outdoor) < len(kinds) / 2
    assert len(products) == len(sample_products(world.data.world, 0))


def test_the_shared_type_shape_needs_shared_types():
    from mars_core.config.data import WorldConfig

    with pytest.raises(ValueError, match="shared_outdoor_types=true"):
        WorldConfig(outdoor_only_categories=False, shared_outdoor_types=False)
