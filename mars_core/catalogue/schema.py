"""Fixed schemas of the ingest artifacts (parquet), shared by ingest, indexing and search.

Artifacts live in `data.out_dir`:

* `catalogue.parquet`    one row per product (`CATALOGUE_SCHEMA`), sorted by `key`
* `rooms.parquet`        one row per room photo (`ROOMS_SCHEMA`), sorted by `room_id`
* `quarantine.parquet`   rejected input with its reason (`QUARANTINE_SCHEMA`; reason codes
                         are `mars_core.catalogue.quarantine.Reason`)
* `ground_truth.parquet` generated world only: how well each product fits each room
                         (`GROUND_TRUTH_SCHEMA`), sorted by room, category, key
* `splits.parquet`       train/test assignment, grouped by room and product image
                         (`SPLITS_SCHEMA`)

Columns are only ever added (at the end), never renamed or removed: later stages select the
columns they need by name. A file is rewritten only when its content changed, and
`content_hash` changes exactly when a product's indexed text, category or image bytes do, so
index builds can re-embed only what changed.
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
        pa.field("name", pa.string(), nullable=False),  # in the preferred language, bounded
        pa.field("category", pa.string(), nullable=False),  # funnel category, e.g. "BED"
        pa.field("product_type", pa.string(), nullable=False),  # raw ABO product_type
        pa.field("brand", pa.string()),
        pa.field("color", pa.string()),  # ABO standardized value when given ("Blue")
        pa.field("material", pa.string()),  # distinct values joined: "Wood, Metal"
        pa.field("style", pa.string()),
        pa.field("keywords", pa.list_(pa.string())),  # lower-case, distinct, bounded
        pa.field("description", pa.string()),  # HTML stripped, bounded
        pa.field("search_text", pa.string(), nullable=False),  # what BM25 indexes
        pa.field("image_id", pa.string(), nullable=False),  # ABO main_image_id
        pa.field("image_path", pa.string(), nullable=False),  # absolute path of the image file
        pa.field("image_width", pa.int32(), nullable=False),
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),  # text fields + image bytes
        # Added by ingest beyond the original contract:
        pa.field("language", pa.string(), nullable=False),  # tag the name came in; "" untagged
        pa.field("node", pa.string()),  # ABO browse-node path
        pa.field("other_image_ids", pa.list_(pa.string())),  # ABO other_image_id
        pa.field("length_cm", pa.float64()),
        pa.field("width_cm", pa.float64()),
        pa.field("height_cm", pa.float64()),
        pa.field("weight_kg", pa.float64()),
        pa.field("source", pa.string(), nullable=False),  # "listings/metadata/<shard>:<line>"
    ]
)

ROOMS_SCHEMA = pa.schema(
    [
        pa.field("room_id", pa.string(), nullable=False),  # "<class folder>/<file name>"
        pa.field("room_type", pa.string(), nullable=False),  # e.g. "bedroom", "pool"
        pa.field("path", pa.string(), nullable=False),  # absolute path of the photo
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        # Added by ingest beyond the original contract:
        pa.field("source_class", pa.string(), nullable=False),  # the class folder's name
        pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the file's bytes
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

# One row per (room, product): the query category of the row is the product's category, so
# a (room, category) query's judged list is every row with that room and category.
GROUND_TRUTH_SCHEMA = pa.schema(
    [
        pa.field("room_id", pa.string(), nullable=False),
        pa.field("room_type", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("grade", pa.int8(), nullable=False),  # 0 does not fit .. 3 fits, style+colour
        pa.field("fits", pa.bool_(), nullable=False),  # functional fit: room type and setting
        pa.field("style_match", pa.bool_(), nullable=False),
        pa.field("color_match", pa.bool_(), nullable=False),  # product colour in room palette
        pa.field("trap", pa.bool_(), nullable=False),  # looks right (colour) but does not fit
        pa.field("reason", pa.string(), nullable=False),  # one short sentence
    ]
)

# The generated world writes this (in its raw folder); ingest adds room_type and category
# from the rooms and catalogue tables, so they always agree with the configured maps.
RAW_TRUTH_SCHEMA = pa.schema(
    [field for field in GROUND_TRUTH_SCHEMA if field.name not in ("room_type", "category")]
)

SPLITS_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),  # "room" or "product"
        pa.field("id", pa.string(), nullable=False),  # room_id or catalogue key
        pa.field("group", pa.string(), nullable=False),  # members of a group share a split
        pa.field("stratum", pa.string(), nullable=False),  # room_type or category
        pa.field("split", pa.string(), nullable=False),  # "train" or "test"
    ]
)
