"""Ingest: ABO listings + room photos (+ the generated world's ground truth) -> parquet tables.

Every listing either becomes one catalogue row or one quarantine row with a reason code; a
run fails as a whole only when the input is not an ABO layout at all (or a configured folder
is missing). Tables are written atomically and only when their content changed, and each
product carries a content hash, so a second run over unchanged input changes nothing and a
changed input tells the index builders exactly which products to redo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mars_core.catalogue.abo import (
    AboLayout,
    ImageRecord,
    read_image_index,
    read_shard,
    shard_source,
)
from mars_core.catalogue.changes import content_hash, diff_hashes, key_hashes
from mars_core.catalogue.image_check import ImageFile, inspect_image
from mars_core.catalogue.listing import Listing, clean_text, parse_listing, record_key
from mars_core.catalogue.quarantine import Quarantine, Reason, Rejected
from mars_core.catalogue.rooms import scan_rooms
from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    GROUND_TRUTH_FILE,
    GROUND_TRUTH_SCHEMA,
    QUARANTINE_FILE,
    RAW_TRUTH_SCHEMA,
    ROOMS_FILE,
    ROOMS_SCHEMA,
)
from mars_core.catalogue.tables import read_table, write_table
from mars_core.config import DataConfig
from mars_core.infra.errors import BadImageError, ImageMissingError, ImageTooLargeError

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What one ingest run produced; the flow logs `metrics()` to MLflow."""

    out_dir: str
    products: int
    rooms: int
    ground_truth: int
    quarantined: dict[str, int]
    changes: dict[str, int]  # products added / changed / removed / unchanged since last run
    written: list[str] = field(default_factory=list)  # files rewritten (unchanged ones are not)

    def metrics(self) -> dict[str, float]:
        counts = {
            "products": self.products,
            "rooms": self.rooms,
            "ground_truth_rows": self.ground_truth,
            "quarantined": sum(self.quarantined.values()),
        }
        counts |= {f"quarantine.{reason}": self.quarantined.get(reason, 0) for reason in Reason}
        counts |= {f"catalogue.{change}": n for change, n in self.changes.items()}
        return {name: float(value) for name, value in counts.items()}


def search_text(listing: Listing, limit: int) -> str:
    """What BM25 indexes: name first, then category words and every descriptive field."""
    node_leaf = listing.node.rsplit("/", 1)[-1] if listing.node else None
    parts = [
        listing.name,
        listing.category.replace("_", " ").lower(),
        listing.product_type.replace("_", " ").lower(),
        listing.brand,
        listing.color,
        listing.color_label,
        listing.material,
        listing.style,
        node_leaf,
        " ".join(listing.keywords),
        *listing.bullets,
        listing.description,
    ]
    distinct = dict.fromkeys(part for part in parts if part)
    return clean_text(" . ".join(distinct), limit)


def resolve_image(
    image_id: str, images: dict[str, ImageRecord], layout: AboLayout, max_pixels: int
) -> tuple[Path, ImageFile]:
    """The main image's file and its check, or Rejected with the image reason."""
    record = images.get(image_id)
    if record is None:
        raise Rejected(Reason.IMAGE_NOT_INDEXED, f"{image_id} not in images.csv.gz")
    relative = Path(record.path)
    if relative.is_absolute() or ".." in relative.parts:
        raise Rejected(Reason.IMAGE_FILE_MISSING, f"{record.path} points outside images/small")
    path = layout.images_dir / relative
    try:
        return path, inspect_image(path, max_pixels)
    except ImageMissingError as error:
        raise Rejected(Reason.IMAGE_FILE_MISSING, str(error)) from error
    except BadImageError as error:
        raise Rejected(Reason.IMAGE_UNDECODABLE, str(error)) from error
    except ImageTooLargeError as error:
        raise Rejected(Reason.IMAGE_TOO_LARGE, str(error)) from error


def catalogue_row(listing: Listing, path: Path, image: ImageFile, source: str, limit: int) -> dict:
    row = {
        "key": listing.key,
        "item_id": listing.item_id,
        "domain": listing.domain,
        "name": listing.name,
        "category": listing.category,
        "product_type": listing.product_type,
        "brand": listing.brand,
        "color": listing.color,
        "material": listing.material,
        "style": listing.style,
        "keywords": list(listing.keywords),
        "description": listing.description,
        "search_text": search_text(listing, limit),
        "image_id": listing.main_image_id,
        "image_path": str(path),
        "image_width": image.width,
        "image_height": image.height,
        "language": listing.language,
        "node": listing.node,
        "other_image_ids": list(listing.other_image_ids),
        "length_cm": listing.length_cm,
        "width_cm": listing.width_cm,
        "height_cm": listing.height_cm,
        "weight_kg": listing.weight_kg,
        "source": source,
    }
    row["content_hash"] = content_hash(row, image.sha256)
    return row


def build_catalogue(layout: AboLayout, data: DataConfig, quarantine: Quarantine) -> pa.Table:
    """One row per usable listing (first of each key wins), sorted by key."""
    images = read_image_index(layout.images_csv, quarantine)
    rows: dict[str, dict] = {}
    for shard in layout.shards:
        source = shard_source(shard)
        for line, record in read_shard(shard, quarantine):
            key = record_key(record)
            try:
                if key in rows:
                    raise Rejected(Reason.DUPLICATE_KEY, f"first seen at {rows[key]['source']}")
                listing = parse_listing(record, data)
                path, image = resolve_image(
                    listing.main_image_id, images, layout, data.max_image_pixels
                )
            except Rejected as rejected:
                quarantine.reject(source, rejected, line=line, record_id=key)
                continue
            rows[key] = catalogue_row(
                listing, path, image, f"{source}:{line}", data.max_search_chars
            )
    ordered = [rows[key] for key in sorted(rows)]
    return pa.Table.from_pylist(ordered, schema=CATALOGUE_SCHEMA)


def build_rooms(data: DataConfig, quarantine: Quarantine) -> pa.Table:
    if not data.rooms_dir:
        log.warning("data.rooms_dir is empty: no room photos are ingested")
        return ROOMS_SCHEMA.empty_table()
    return scan_rooms(
        Path(data.rooms_dir), data.room_classes(), quarantine, max_pixels=data.max_image_pixels
    )


def load_ground_truth(
    path: Path, catalogue: pa.Table, rooms: pa.Table, quarantine: Quarantine
) -> pa.Table:
    """The world's truth joined with the tables; rows naming absent products or rooms go to
    quarantine (one row per absent product or room), so evaluation never judges a ghost."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"data.truth_file {path} does not exist: the generated world writes it "
            "(data.source=synthetic); set data.truth_file='' for data without ground truth"
        )
    raw = read_table(path, RAW_TRUTH_SCHEMA).select(RAW_TRUTH_SCHEMA.names)
    joined = raw.join(catalogue.select(["key", "category"]), "key", join_type="left outer")
    joined = joined.join(rooms.select(["room_id", "room_type"]), "room_id", join_type="left outer")
    for column, lookup, what in (("key", "category", "product"), ("room_id", "room_type", "room")):
        missing = joined.filter(pc.is_null(joined[lookup]))[column]
        for counted in pc.value_counts(missing).to_pylist():
            quarantine.add(
                path.name,
                Reason.TRUTH_ORPHAN,
                record_id=counted["values"],
                detail=f"{counted['counts']} ground-truth rows name this {what}, "
                f"which is not in the {what} table",
            )
    usable = joined.filter(
        pc.and_(pc.is_valid(joined["category"]), pc.is_valid(joined["room_type"]))
    )
    usable = usable.select(GROUND_TRUTH_SCHEMA.names).cast(GROUND_TRUTH_SCHEMA)
    return usable.sort_by(
        [("room_id", "ascending"), ("category", "ascending"), ("key", "ascending")]
    )


def catalogue_changes(path: Path, catalogue: pa.Table) -> dict[str, int]:
    """Products added, changed (new content hash), removed and unchanged since the last run."""
    old: dict[str, str] = {}
    if path.is_file():
        old = key_hashes(pq.read_table(path, columns=["key", "content_hash"]))
    return diff_hashes(old, key_hashes(catalogue)).counts()


def ingest(data: DataConfig) -> IngestReport:
    """Build catalogue, rooms, ground truth (if any) and quarantine tables in data.out_dir."""
    if not data.category_map:
        raise ValueError(
            "data.category_map is empty: map ABO product_type values to funnel categories, "
            "e.g. {BED: BED, STOOL_SEATING: STOOL}"
        )
    if not data.out_dir:
        raise ValueError("data.out_dir is not set: say where the catalogue tables go")
    layout = AboLayout.find(Path(data.raw_dir))
    out = Path(data.out_dir)
    quarantine = Quarantine()
    catalogue = build_catalogue(layout, data, quarantine)
    rooms = build_rooms(data, quarantine)
    tables = {CATALOGUE_FILE: catalogue, ROOMS_FILE: rooms}
    if data.truth_file:
        tables[GROUND_TRUTH_FILE] = load_ground_truth(
            Path(data.truth_file), catalogue, rooms, quarantine
        )
    elif (out / GROUND_TRUTH_FILE).is_file():
        log.warning("removing %s: data.truth_file is empty, it would be stale", GROUND_TRUTH_FILE)
        (out / GROUND_TRUTH_FILE).unlink()
    tables[QUARANTINE_FILE] = quarantine.table()
    changes = catalogue_changes(out / CATALOGUE_FILE, catalogue)
    written = [name for name, table in tables.items() if write_table(table, out / name)]
    quarantine.log_counts()
    log.info(
        "ingest: %d products, %d rooms in %s; catalogue %s; rewrote %s",
        catalogue.num_rows, rooms.num_rows, out, changes, written or "nothing",
    )  # fmt: skip
    return IngestReport(
        out_dir=str(out),
        products=catalogue.num_rows,
        rooms=rooms.num_rows,
        ground_truth=tables[GROUND_TRUTH_FILE].num_rows if GROUND_TRUTH_FILE in tables else 0,
        quarantined=quarantine.counts(),
        changes=changes,
        written=written,
    )
