"""Fixed schemas of the ingest artifacts (parquet), shared by ingest, indexing and search.

Artifacts live in `data.out_dir`:

* `catalogue.parquet`   one row per product (`CATALOGUE_SCHEMA`)
* `rooms.parquet`       one row per room photo (`ROOMS_SCHEMA`)
* `quarantine.parquet`  rejected input with its reason (`QUARANTINE_SCHEMA`)
* `ground_truth.parquet` generated world only: how well each product fits each room
* `splits.parquet`      train/test assignment, grouped by room and product image
"""

from __future__ import annotations

import pyarrow as pa

CATALOGUE_FILE = "catalogue.parquet"
ROOMS_FILE = "rooms.parquet"
QUARANTINE_FILE = "quarantine.parquet"
GROUND_TRUTH_FILE = "ground_truth.parquet"
SPLITS_FILE = "splits.parquet"

CATALOGUE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # f"{item_id}@{domain_name}", unique
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),  # funnel category, e.g. "BED"
        pa.field("product_type", pa.string(), nullable=False),  # raw ABO product_type
        pa.field("brand", pa.string()),
        pa.field("color", pa.string()),
        pa.field("material", pa.string()),
        pa.field("style", pa.string()),
        pa.field("keywords", pa.list_(pa.string())),
        pa.field("description", pa.string()),
        pa.field("search_text", pa.string(), nullable=False),  # what BM25 indexes
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("image_path", pa.string(), nullable=False),  # absolute path of the image file
        pa.field("image_width", pa.int32(), nullable=False),
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),  # text fields + image bytes
    ]
)

ROOMS_SCHEMA = pa.schema(
    [
        pa.field("room_id", pa.string(), nullable=False),
        pa.field("room_type", pa.string(), nullable=False),  # e.g. "bedroom", "pool"
        pa.field("path", pa.string(), nullable=False),  # absolute path of the photo
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),  # shard or folder the record came from
        pa.field("line", pa.int64()),  # 1-based line in the shard, when it has lines
        pa.field("record_id", pa.string()),  # item key or file name, when known
        pa.field("reason", pa.string(), nullable=False),  # a reason code, see ingest
        pa.field("detail", pa.string()),
    ]
)
