"""A pairs table built from the session's generated world, for the teacher tests.

Mining makes the real pairs; these tests build their own small table in PAIRS_SCHEMA (every
train room x a few train products of every category), so the teacher is tested on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE
from mars_core.mining.schema import PAIRS_FILE, PAIRS_SCHEMA

PRODUCTS_PER_CATEGORY = 3


def _similarity(room_id: str, key: str) -> float:
    """A stable stand-in for SigLIP similarity (mining computes the real one)."""
    digest = hashlib.sha256(f"{room_id}|{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def build_pairs(out_dir: Path, per_category: int = PRODUCTS_PER_CATEGORY) -> pa.Table:
    """Every train room x `per_category` train products of each category, ranked by the
    stand-in similarity within (room, category): rank 1 is the look-alike, the last is far."""
    splits = pq.read_table(out_dir / SPLITS_FILE).to_pylist()
    train = {(s["kind"], s["id"]) for s in splits if s["split"] == "train"}
    rooms = pq.read_table(out_dir / ROOMS_FILE).to_pylist()
    rooms = [r for r in rooms if ("room", r["room_id"]) in train]
    products: dict[str, list[dict]] = {}
    for p in pq.read_table(out_dir / CATALOGUE_FILE).to_pylist():
        if ("product", p["key"]) in train and len(products.get(p["category"], [])) < per_category:
            products.setdefault(p["category"], []).append(p)
    rows = []
    for room in rooms:
        for category, members in products.items():
            ranked = sorted(members, key=lambda p: -_similarity(room["room_id"], p["key"]))
            for rank, product in enumerate(ranked, start=1):
                stratum = "lookalike" if rank == 1 else "far" if rank == len(ranked) else "random"
                rows.append(
                    {
                        "pair_id": f"{room['room_id']}|{product['key']}",
                        "room_id": room["room_id"],
                        "room_type": room["room_type"],
                        "key": product["key"],
                        "category": category,
                        "query": category.lower().replace("_", " "),
                        "stratum": stratum,
                        "similarity": _similarity(room["room_id"], product["key"]),
                        "rank": rank,
                        "split": "train",
                    }
                )
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)


def small_pairs(pairs_table: pa.Table, folder: Path, rows: int, name: str = PAIRS_FILE) -> Path:
    """The first `rows` pairs (a spread of rooms and categories) as a pairs file in `folder`."""
    step = max(1, pairs_table.num_rows // rows)
    table = pairs_table.take(list(range(0, step * rows, step))[:rows])
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)
    return folder / name


def teacher_cfg(cfg, **changes):
    """The session config's teacher with `changes` (validated like a composed one)."""
    return dataclasses.replace(cfg.teacher, **changes)
