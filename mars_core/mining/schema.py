"""The mining artifact: `pairs.parquet` (training rooms) and `heldout_pairs.parquet` (test rooms).

Both live beside the catalogue (`data.out_dir`). One row per (room, product): the asked
category is the product's category, so a (room, category) request's pairs are every row with
that room and category. Columns are only ever added, never renamed or removed.
"""

from __future__ import annotations

import pyarrow as pa

PAIRS_FILE = "pairs.parquet"
HELDOUT_PAIRS_FILE = "heldout_pairs.parquet"

STRATA = ("lookalike", "far", "random")

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),  # f"{room_id}|{key}", unique
        pa.field("room_id", pa.string(), nullable=False),  # rooms.parquet room_id
        pa.field("room_type", pa.string(), nullable=False),  # rooms.parquet room_type
        pa.field("key", pa.string(), nullable=False),  # catalogue key
        pa.field("category", pa.string(), nullable=False),  # asked category = product's
        pa.field("query", pa.string(), nullable=False),  # query text naming the category
        pa.field("stratum", pa.string(), nullable=False),  # one of STRATA
        pa.field("similarity", pa.float32(), nullable=False),  # room photo vs product image
        pa.field("rank", pa.int32(), nullable=False),  # 1 = most similar in room x category
        pa.field("split", pa.string(), nullable=False),  # "train" or "test"
    ]
)
