"""Ingest over a hand-made ABO tree with every oddity: each becomes one quarantine row with its
reason, source and line; good listings become catalogue rows; re-runs change nothing."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random
import shutil

import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.abo_tree import REAL_LISTING, AboTree, jpeg_bytes, listing

from mars_core.catalogue.abo import NotAboLayoutError
from mars_core.catalogue.ingest import ingest
from mars_core.catalogue.quarantine import Reason
from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    GROUND_TRUTH_FILE,
    GROUND_TRUTH_SCHEMA,
    QUARANTINE_FILE,
    QUARANTINE_SCHEMA,
    RAW_TRUTH_SCHEMA,
    ROOMS_FILE,
    ROOMS_SCHEMA,
)

SHARD = "listings/metadata/listings_0.json.gz"
MAX_IMAGE_PIXELS = 10_000  # data.max_image_pixels here: above the test images, below the huge ones


def make_tree(root):
    """A tree with three good listings and one record per listing-level reason."""
    tree = AboTree(root / "abo")
    lines: dict[str, int] = {}
    tree.add(REAL_LISTING | {"other_image_id": ["71fY7r9GhsL"]})
    tree.image("81iZlv3bjpL")
    tree.image("71fY7r9GhsL")
    tree.add(listing("B0SOFA0001", tree.image("SOFAIMG0001"), product_type=[{"value": "SOFA"}]))
    uk = listing("B07HJZKG1V", "81iZlv3bjpL", domain_name="amazon.co.uk")
    tree.add(uk, shard="listings_1.json.gz")  # same item, other marketplace, same image
    lines["malformed_json"] = tree.add('{"item_id": "B0TRUNC", "item_name": [')
    lines["malformed_record"] = tree.add('"just a string"')
    lines["duplicate_key"] = tree.add(REAL_LISTING)
    lines["no_name"] = tree.add(listing("B0NONAME01", "81iZlv3bjpL", item_name=[]))
    lines["no_category"] = tree.add(listing("B0NOTYPE01", "81iZlv3bjpL", product_type=None))
    phone = [{"value": "CELLULAR_PHONE_CASE"}]
    lines["unmapped_category"] = tree.add(listing("B0PHONE001", "81iZlv3bjpL", product_type=phone))
    lines["no_image"] = tree.add(listing("B0NOIMAGE1", "x", main_image_id=None))
    lines["image_not_indexed"] = tree.add(listing("B0NOINDEX1", "NEVERLISTED"))
    tree.image("GONE0000001", on_disk=False)
    lines["image_file_missing"] = tree.add(listing("B0GONEFILE", "GONE0000001"))
    tree.image("BROKEN00001", data=jpeg_bytes()[:60])
    lines["image_undecodable"] = tree.add(listing("B0BROKENIM", "BROKEN00001"))
    tree.image_rows.append(["BADROW00001", "tall", "32", "ba/badrow.jpg"])
    tree.image("HUGEIMG0001", data=jpeg_bytes(px=120))  # over MAX_IMAGE_PIXELS
    lines["image_too_large"] = tree.add(listing("B0HUGEIMG1", "HUGEIMG0001"))
    tree.write()
    # A shard whose gzip stream is cut short inside its second line.
    good = listing("B0CHAIR001", tree.image("CHAIRIMG001"), product_type=[{"value": "CHAIR"}])
    tree.write()
    padding = json.dumps({"pad": random.Random(0).randbytes(4000).hex()})
    blob = gzip.compress(f"{json.dumps(good)}\n{padding}\n".encode())
    (tree.root / "listings/metadata/listings_2.json.gz").write_bytes(blob[:-200])
    return tree, lines


def make_rooms(root):
    rooms = root / "rooms"
    for folder, colour in (("Bedroom", (200, 200, 10)), ("Livingroom", (10, 200, 10))):
        (rooms / folder).mkdir(parents=True)
        Image.new("RGB", (48, 40), colour).save(rooms / folder / "room_001.jpg")
    (rooms / "Garage").mkdir()
    Image.new("RGB", (48, 40)).save(rooms / "Garage" / "car.jpg")
    (rooms / "Bedroom" / "Thumbs.db").write_bytes(b"\x00\x01junk")
    Image.new("RGB", (120, 100)).save(rooms / "Bedroom" / "huge.jpg")  # over MAX_IMAGE_PIXELS
    (rooms / "README.txt").write_text("loose file beside the class folders")
    return rooms


def make_truth(path, keys, room_ids):
    import pyarrow as pa

    rows = [
        {"room_id": r, "key": k, "grade": 2, "fits": True, "style_match": True,
         "color_match": False, "trap": False, "reason": "fits"}
        for r in room_ids for k in keys
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_TRUTH_SCHEMA), path)


@pytest.fixture()
def ingested(tmp_path, cfg):
    tree, lines = make_tree(tmp_path)
    rooms = make_rooms(tmp_path)
    truth = tmp_path / "truth.parquet"
    keys = ["B07HJZKG1V@amazon.com", "B0SOFA0001@amazon.com", "B0GHOST001@amazon.com"]
    make_truth(truth, keys, ["Bedroom/room_001.jpg", "Attic/ghost.jpg"])
    data = dataclasses.replace(
        cfg.data,
        source="abo",
        raw_dir=str(tree.root),
        rooms_dir=str(rooms),
        truth_file=str(truth),
        out_dir=str(tmp_path / "out"),
        max_image_pixels=MAX_IMAGE_PIXELS,
    )
    return data, ingest(data), lines


def test_every_reason_code_is_exercised_with_source_and_line(ingested):
    data, report, lines = ingested
    quarantine = pq.read_table(f"{data.out_dir}/{QUARANTINE_FILE}")
    assert quarantine.schema.equals(QUARANTINE_SCHEMA)
    rows = quarantine.to_pylist()
    assert {row["reason"] for row in rows} == {str(reason) for reason in Reason}
    by_reason = {row["reason"]: row for row in rows}
    for reason, line in lines.items():
        assert (by_reason[reason]["source"], by_reason[reason]["line"]) == (SHARD, line), reason
    assert by_reason["duplicate_key"]["record_id"] == "B07HJZKG1V@amazon.com"
    assert by_reason["unmapped_category"]["detail"] == "CELLULAR_PHONE_CASE"
    assert by_reason["bad_image_row"]["source"] == "images/metadata/images.csv.gz"
    assert by_reason["bad_image_row"]["line"] == 7  # header is line 1
    assert by_reason["shard_unreadable"]["source"] == "listings/metadata/listings_2.json.gz"
    rooms = {row["record_id"]: row["reason"] for row in rows if row["source"] != SHARD}
    assert rooms["Garage/car.jpg"] == rooms["README.txt"] == "unknown_room_class"
    assert rooms["Bedroom/Thumbs.db"] == "room_undecodable"
    assert rooms["Bedroom/huge.jpg"] == "room_too_large"
    assert "14,400 pixels" in by_reason["image_too_large"]["detail"]
    assert rooms["B0GHOST001@amazon.com"] == rooms["Attic/ghost.jpg"] == "truth_orphan"
    assert report.quarantined == {
        reason: sum(row["reason"] == reason for row in rows) for reason in report.quarantined
    }


def test_good_listings_become_catalogue_rows(ingested):
    data, report, _ = ingested
    catalogue = pq.read_table(f"{data.out_dir}/{CATALOGUE_FILE}")
    assert catalogue.schema.equals(CATALOGUE_SCHEMA)
    keys = catalogue["key"].to_pylist()
    assert keys == sorted(keys)
    # B0CHAIR001 is the cut shard's first line: it survived the break.
    assert set(keys) == {
        "B07HJZKG1V@amazon.com",
        "B07HJZKG1V@amazon.co.uk",
        "B0SOFA0001@amazon.com",
        "B0CHAIR001@amazon.com",
    }
    bed = next(row for row in catalogue.to_pylist() if row["key"] == "B07HJZKG1V@amazon.com")
    assert bed["category"] == "BED" and bed["color"] == "Blue"
    assert bed["source"] == f"{SHARD}:1"
    assert bed["image_path"].endswith("images/small/81/81izlv3bjpl.jpg")
    assert (bed["image_width"], bed["image_height"]) == (32, 32)
    for word in ("bed", "Navy Blue", "Rivet", "platform bed", "No box spring needed"):
        assert word in bed["search_text"]
    assert "<" not in bed["search_text"]
    assert report.products == 4 and report.changes["added"] == 4


def test_rooms_and_ground_truth_tables(ingested):
    data, report, _ = ingested
    rooms = pq.read_table(f"{data.out_dir}/{ROOMS_FILE}")
    assert rooms.schema.equals(ROOMS_SCHEMA)
    assert rooms.select(["room_id", "room_type", "width", "height"]).to_pylist() == [
        {"room_id": "Bedroom/room_001.jpg", "room_type": "bedroom", "width": 48, "height": 40},
        {"room_id": "Livingroom/room_001.jpg", "room_type": "living_room", "width": 48,
         "height": 40},
    ]  # fmt: skip
    truth = pq.read_table(f"{data.out_dir}/{GROUND_TRUTH_FILE}")
    assert truth.schema.equals(GROUND_TRUTH_SCHEMA)
    assert truth.select(["room_id", "room_type", "category", "key"]).to_pylist() == [
        {"room_id": "Bedroom/room_001.jpg", "room_type": "bedroom", "category": "BED",
         "key": "B07HJZKG1V@amazon.com"},
        {"room_id": "Bedroom/room_001.jpg", "room_type": "bedroom", "category": "SOFA",
         "key": "B0SOFA0001@amazon.com"},
    ]  # fmt: skip
    assert report.ground_truth == 2 and report.rooms == 2


def test_rerun_over_unchanged_input_changes_nothing(ingested):
    data, first, _ = ingested
    out = data.out_dir
    before = {name: pq.read_table(f"{out}/{name}") for name in first.written}
    stamps = {name: (f"{out}/{name}", os.stat(f"{out}/{name}").st_mtime_ns) for name in before}
    again = ingest(data)
    assert again.written == []
    assert again.changes == {"added": 0, "changed": 0, "removed": 0, "unchanged": 4}
    for name, (path, mtime) in stamps.items():
        assert os.stat(path).st_mtime_ns == mtime
        assert pq.read_table(path).equals(before[name])


def test_hashes_follow_content_not_location(ingested, tmp_path):
    data, _, _ = ingested
    hashes = pq.read_table(f"{data.out_dir}/{CATALOGUE_FILE}", columns=["key", "content_hash"])
    moved = tmp_path / "moved"
    shutil.copytree(data.raw_dir, moved)
    elsewhere = dataclasses.replace(data, raw_dir=str(moved), out_dir=str(tmp_path / "out2"))
    ingest(elsewhere)
    again = pq.read_table(tmp_path / "out2" / CATALOGUE_FILE, columns=["key", "content_hash"])
    assert again.equals(hashes)
    # One changed image changes exactly one product's hash.
    sofa = next(moved.glob("images/small/so/*.jpg"))
    sofa.write_bytes(jpeg_bytes((250, 10, 10)))
    report = ingest(elsewhere)
    assert report.changes == {"added": 0, "changed": 1, "removed": 0, "unchanged": 3}


def test_a_folder_that_is_not_abo_stops_the_run_with_what_is_expected(cfg, tmp_path):
    (tmp_path / "photos").mkdir()
    data = dataclasses.replace(cfg.data, raw_dir=str(tmp_path), out_dir=str(tmp_path / "o"))
    with pytest.raises(NotAboLayoutError, match=r"listings_\*\.json\.gz.*images\.csv\.gz"):
        ingest(data)
    with pytest.raises(NotAboLayoutError, match="does not exist"):
        ingest(dataclasses.replace(data, raw_dir=str(tmp_path / "nowhere")))


def test_progress_bars_show_on_long_loops(ingested, capsys):
    data, _, _ = ingested
    capsys.readouterr()
    ingest(data)
    err = capsys.readouterr().err
    for bar in ("images.csv", "listings_0.json.gz", "rooms"):
        assert bar in err


def test_a_cut_images_csv_loses_its_tail_not_the_run(ingested):
    data, _, _ = ingested
    images_csv = os.path.join(data.raw_dir, "images/metadata/images.csv.gz")
    rows = "image_id,height,width,path\n" + "".join(
        f"PAD{i:08d},32,32,pa/{i}.jpg\n" for i in range(3000)
    )
    with open(images_csv, "wb") as handle:
        handle.write(gzip.compress(rows.encode())[:-300])
    report = ingest(data)
    quarantine = pq.read_table(os.path.join(data.out_dir, QUARANTINE_FILE)).to_pylist()
    lost = [
        q
        for q in quarantine
        if q["source"] == "images/metadata/images.csv.gz" and q["reason"] == "shard_unreadable"
    ]
    assert len(lost) == 1 and "are lost" in lost[0]["detail"]
    # Every listing's image is now unknown: each is quarantined by name, none crashes the run.
    assert report.products == 0 and report.quarantined["image_not_indexed"] >= 3
