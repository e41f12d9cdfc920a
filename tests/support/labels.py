"""Teacher labels made up from room type and category (a stand-in for the teacher), for tests
that train a student without labelling first."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.prompt import PROMPT_VERSION, answer_text
from mars_core.teacher.schema import LABELS_FILE, LABELS_SCHEMA


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
