"""Shared fixtures for the SFT tests: a small labelled set over the session's world.

Labels here are made up from room type and category (a stand-in for the teacher); they are
written to a private catalogue folder (copies of the session world's tables), never into the
shared world, so other tests never see them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.sft import build_examples

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.prompt import PROMPT_VERSION, answer_text
from mars_core.teacher.schema import LABELS_FILE, LABELS_SCHEMA
from mars_core.training.data import SFTData


def make_labels(out_dir: Path, *, rooms: int, per_room: int, failed: int = 0) -> Path:
    """labels.parquet in `out_dir`: `rooms` rooms x `per_room` products, the first `failed`
    rows failed. Beds score high in bedrooms, everything else low."""
    room_rows = pq.read_table(out_dir / ROOMS_FILE).to_pylist()[:rooms]
    products = pq.read_table(out_dir / CATALOGUE_FILE).to_pylist()[:per_room]
    rows = []
    for room in room_rows:
        for product in products:
            fits = room["room_type"] == "bedroom" and product["category"] == "BED"
            score, reason = (0.9, "it belongs here") if fits else (0.1, "it does not belong here")
            rows.append(
                {
                    "pair_id": f"{room['room_id']}|{product['key']}",
                    "room_id": room["room_id"],
                    "room_type": room["room_type"],
                    "key": product["key"],
                    "category": product["category"],
                    "query": product["category"].lower(),
                    "stratum": "random",
                    "similarity": 0.5,
                    "rank": 1,
                    "split": "train",
                    "score": score,
                    "rationale": reason,
                    "raw": answer_text(score, reason),
                    "status": "ok",
                    "attempts": 1,
                    "teacher": "test",
                    "prompt_version": PROMPT_VERSION,
                }
            )
    for row in rows[:failed]:
        row |= {"score": None, "rationale": None, "raw": "not json", "status": "failed"}
    path = out_dir / LABELS_FILE
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELS_SCHEMA), path)
    return path


@pytest.fixture(scope="session")
def sft_dir(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private catalogue folder (rooms + catalogue of the session world) with labels."""
    out = tmp_path_factory.mktemp("sft-catalogue")
    for name in (ROOMS_FILE, CATALOGUE_FILE):
        shutil.copy(world.out_dir / name, out / name)
    make_labels(out, rooms=8, per_room=4, failed=2)
    return out


@pytest.fixture(scope="session")
def sft_data(sft_dir: Path) -> SFTData:
    """`sft_dir`'s labels as SFT examples, as mined (no balancing)."""
    return build_examples(sft_dir / LABELS_FILE, sft_dir)
