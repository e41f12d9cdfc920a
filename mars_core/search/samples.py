"""Sample requests drawn from the rooms table, for the main job's demonstration searches."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from mars_core.catalogue.schema import ROOMS_FILE, SPLITS_FILE
from mars_core.config import DemoRequest
from mars_core.infra.io import atomic_write_text


def sample_requests(catalogue_dir: Path, wanted: list[DemoRequest]) -> list[dict[str, str]]:
    """One request per wanted (room type, query): the first held-out room of that type.

    Held-out (test split) rooms are preferred so a demo after training shows unseen rooms.
    """
    rooms = pq.read_table(catalogue_dir / ROOMS_FILE).to_pylist()
    test_rooms = _test_rooms(catalogue_dir)
    rooms.sort(key=lambda r: (r["room_id"] not in test_rooms, r["room_id"]))
    requests = []
    for want in wanted:
        room = next((r for r in rooms if r["room_type"] == want.room_type), None)
        if room is None:
            known = sorted({r["room_type"] for r in rooms})
            raise ValueError(f"no room of type {want.room_type!r} in the catalogue; have {known}")
        requests.append({"room": room["path"], "query": want.query, "room_id": room["room_id"]})
    return requests


def _test_rooms(catalogue_dir: Path) -> set[str]:
    path = catalogue_dir / SPLITS_FILE
    if not path.is_file():
        return set()
    splits = pq.read_table(path).to_pylist()
    return {s["id"] for s in splits if s.get("kind") == "room" and s.get("split") == "test"}


def demo_requests_file(catalogue_dir: Path, wanted: list[DemoRequest], path: Path) -> Path:
    """The sampled requests as a JSONL file, as the inference flow reads it."""
    requests = sample_requests(catalogue_dir, wanted)
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in requests))
