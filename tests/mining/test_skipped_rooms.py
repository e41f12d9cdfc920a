"""Rooms that cannot be mined are reported as `Skipped`, with why, never dropped silently."""

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from mars_core.catalogue.schema import ROOMS_FILE, SPLITS_FILE
from mars_core.infra.skipped import Skipped
from mars_core.mining.mine import embed_rooms, split_rooms


def test_a_room_without_a_split_or_a_loadable_photo_is_skipped_with_its_reason(tmp_path, embedder):
    good, broken = tmp_path / "good.png", tmp_path / "broken.png"
    Image.new("RGB", (64, 48), "white").save(good)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not the rest of a png")
    rooms = {
        "room_id": ["r1", "r2", "r3"],
        "room_type": ["bedroom"] * 3,
        "path": [str(good), str(broken), str(good)],
    }
    pq.write_table(pa.table(rooms), tmp_path / ROOMS_FILE)
    splits = {"kind": ["room", "room"], "id": ["r1", "r2"], "split": ["train", "train"]}
    pq.write_table(pa.table(splits), tmp_path / SPLITS_FILE)

    by_split, missing = split_rooms(tmp_path)
    assert missing == [Skipped("r3", "not in splits.parquet")]
    embedded, skipped = embed_rooms(by_split["train"], embedder)
    assert [room.room_id for room, _ in embedded] == ["r1"]
    assert [(entry.key, entry.reason) for entry in skipped] == [("r2", "BadImageError")]
    assert broken.name in skipped[0].detail
