"""Generate the world: ABO-format listings and images, House-Rooms-style room photos and the
ground truth, deterministic from the seed, sized by `data.world`.

Layout written under `data.raw_dir` (the same files the real data comes in):

    listings/metadata/listings_<i>.json.gz    ABO listings (gzip NDJSON)
    images/metadata/images.csv.gz             image_id,height,width,path
    images/small/<xx>/<xxxxxxxx>.jpg          product shots
    <rooms_dir>/<Class>/<room_type>_<k>.jpg   room photos (Bedroom/, Dinning/, ..., Pool/, Patio/)
    <truth_file>                              (room_id, key) -> grade, fits, reason (parquet)
    world.json                                what was generated: a re-run with the same
                                              settings leaves the folder alone

With `broken_records`, one bad record per quarantine reason is added (and judged nowhere
except the one orphaned product), so the offline profile shows the quarantine path too.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import random
import shutil
import string
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from mars_core.catalogue.abo import IMAGES_CSV, IMAGES_CSV_COLUMNS, IMAGES_DIR, LISTINGS_DIR
from mars_core.catalogue.listing import listing_key
from mars_core.catalogue.rooms import room_id_for
from mars_core.catalogue.schema import RAW_TRUTH_SCHEMA
from mars_core.config import DataConfig, WorldConfig
from mars_core.world.abo_record import FOREIGN_DOMAIN, HOME_DOMAIN, TWIN_DOMAIN, listing_record
from mars_core.world.draw import product_image, room_image
from mars_core.world.truth import Product, Room, judge
from mars_core.world.vocab import (
    BRANDS,
    COLOUR_VARIANTS,
    COLOURS,
    INDOOR_ROOMS,
    OUTDOOR_VERSIONS,
    PATIO_LAWN,
    POOL_WATER,
    ROOM_FOLDERS,
    ROOM_TYPES,
    STYLES,
    Category,
    outdoor_version,
    world_categories,
)

WORLD_VERSION = 3  # bump when the generator's output changes for the same settings
MANIFEST = "world.json"
DECK_COLOURS = ("beige", "grey", "brown", "yellow")
PAVER_COLOURS = ("grey", "beige", "brown", "red", "orange")
ID_CHARS = string.ascii_uppercase + string.digits
IMAGE_ID_CHARS = string.ascii_letters + string.digits
JPEG_QUALITY = 90


@dataclass
class WorldSummary:
    """What `generate_world` produced (or found already generated)."""

    root: str
    listings: int
    products: int
    rooms: int
    truth_rows: int
    generated: bool  # False when an identical world was already there


def spread(index: int, share: float) -> bool:
    """True for an evenly spread `share` of indices 0, 1, 2, ... (exact, not random)."""
    return math.floor((index + 1) * share) > math.floor(index * share)


def image_path_for(image_id: str) -> str:
    """ABO-style relative path: a two-character folder and an eight-character file name."""
    name = hashlib.sha1(image_id.encode()).hexdigest()[:8]
    return f"{name[:2]}/{name}.jpg"


def _kind(index: int, config: WorldConfig) -> Category:
    """The product type of product `index` (round robin over the world's types), in its
    outdoor version for an evenly spread `outdoor_version_share` of each shared type (with
    `shared_outdoor_types`)."""
    kinds = world_categories(config.outdoor_only_categories)
    category = kinds[index % len(kinds)]
    shared = config.shared_outdoor_types and category.product_type in OUTDOOR_VERSIONS
    if shared and spread(index // len(kinds), config.outdoor_version_share):
        return outdoor_version(category)
    return category


def _product(index: int, twin: bool, config: WorldConfig, seed: int, taken: set[str]) -> Product:
    rng = random.Random(f"{seed}:product:{index}")
    category = _kind(index, config)
    if category.product_type == "BED":
        rounds = index // len(world_categories(config.outdoor_only_categories))
        blue = spread(rounds, config.blue_bed_share)
        colour = "blue" if blue else rng.choice([c for c in COLOURS if c != "blue"])
    else:
        colour = rng.choice(list(COLOURS))
    item_id = ""
    while not item_id or item_id in taken:
        item_id = "B0" + "".join(rng.choices(ID_CHARS, k=8))
    taken.add(item_id)
    foreign = spread(index, config.foreign_name_share)
    home = FOREIGN_DOMAIN if foreign else HOME_DOMAIN
    return Product(
        item_id=item_id,
        category=category,
        colour=colour,
        colour_label=rng.choice(COLOUR_VARIANTS[colour]),
        style=rng.choice(STYLES),
        material=rng.choice(category.materials),
        brand=rng.choice(BRANDS),
        suffix=rng.choice(category.suffixes),
        image_ids=(
            "".join(rng.choices(IMAGE_ID_CHARS, k=11)),
            "".join(rng.choices(IMAGE_ID_CHARS, k=11)),
        ),
        domains=(home, TWIN_DOMAIN) if twin else (home,),
        foreign_name=foreign,
    )


def sample_products(config: WorldConfig, seed: int) -> list[Product]:
    """`config.products` listings: base products, a `twin_share` of them listed twice."""
    twins = round(config.products * config.twin_share)
    base = config.products - twins
    taken: set[str] = set()
    return [_product(i, spread(i, twins / base), config, seed, taken) for i in range(base)]


def sample_rooms(config: WorldConfig, seed: int) -> list[Room]:
    """`rooms_per_type` rooms of every type, styles spread evenly, palettes at random."""
    rooms = []
    for type_index, room_type in enumerate(ROOM_TYPES):
        for k in range(config.rooms_per_type):
            rng = random.Random(f"{seed}:room:{room_type}:{k}")
            if room_type == "pool":
                palette = (POOL_WATER, rng.choice(DECK_COLOURS))
            elif room_type == "patio":
                palette = (PATIO_LAWN, rng.choice(PAVER_COLOURS))
            else:
                first, second = rng.sample(list(COLOURS), 2)
                palette = (first, second)
            folder, name = ROOM_FOLDERS[room_type], f"{room_type}_{k:03d}.jpg"
            rooms.append(
                Room(
                    room_id=room_id_for(folder, name),
                    room_type=room_type,
                    style=STYLES[(k + type_index) % len(STYLES)],
                    palette=palette,
                    file=f"{folder}/{name}",
                )
            )
    return rooms


def _save_jpeg(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def _gzip(data: bytes) -> bytes:
    """gzip with a fixed header (no timestamp, no name): same input, same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as stream:
        stream.write(data)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv_bytes(rows: list[tuple]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(IMAGES_CSV_COLUMNS)
    writer.writerows(rows)
    return text.getvalue().encode()


class WorldWriter:
    """Writes one world into a staging folder (see the module docstring for the layout)."""

    def __init__(
        self, root: Path, rooms_dir: Path, truth_file: Path, config: WorldConfig, seed: int
    ):
        self.root, self.rooms_dir, self.truth_file = root, rooms_dir, truth_file
        self.config, self.seed = config, seed
        self.shards: list[list[str]] = [[] for _ in range(config.shards)]
        self.image_rows: list[tuple] = []

    def product_images(self, products: list[Product]) -> None:
        px = self.config.product_px
        for product in tqdm(products, desc="world products", unit=" products"):
            for image_id in product.image_ids:
                rng = random.Random(f"{self.seed}:image:{image_id}")
                picture = product_image(product.category, product.colour, product.style, px, rng)
                relative = image_path_for(image_id)
                _save_jpeg(picture, self.root / IMAGES_DIR / relative)
                self.image_rows.append((image_id, px, px, relative))

    def listings(self, products: list[Product]) -> None:
        """Spread the listings over the shards, round robin."""
        count = 0
        for product in products:
            for domain in product.domains:
                rng = random.Random(f"{self.seed}:listing:{product.item_id}:{domain}")
                line = json.dumps(listing_record(product, domain, rng), ensure_ascii=False)
                self.shards[count % len(self.shards)].append(line)
                count += 1

    def rooms(self, rooms: list[Room]) -> None:
        px = self.config.room_px
        for room in tqdm(rooms, desc="world rooms", unit=" rooms"):
            rng = random.Random(f"{self.seed}:photo:{room.room_id}")
            picture = room_image(room.room_type, room.palette, room.style, px, rng)
            _save_jpeg(picture, self.rooms_dir / room.file)

    def truth(self, rooms: list[Room], products: list[Product], extra_keys: list[str]) -> int:
        """Every (room, listing) judged; `extra_keys` are judged like products[0] (orphans)."""
        rows = []
        for room in rooms:
            for product in products:
                verdict = asdict(judge(room, product))
                for domain in product.domains:
                    rows.append(
                        {"room_id": room.room_id, "key": listing_key(product.item_id, domain)}
                        | verdict
                    )
            for key in extra_keys:
                rows.append(
                    {"room_id": room.room_id, "key": key} | asdict(judge(room, products[0]))
                )
        self.truth_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=RAW_TRUTH_SCHEMA), self.truth_file)
        return len(rows)

    def finish(self) -> None:
        for index, lines in enumerate(self.shards):
            data = "".join(f"{line}\n" for line in lines).encode()
            _write(self.root / LISTINGS_DIR / f"listings_{index}.json.gz", _gzip(data))
        _write(self.root / IMAGES_CSV, _gzip(_csv_bytes(sorted(self.image_rows))))


def add_broken_records(writer: WorldWriter) -> list[str]:
    """One bad record per quarantine reason; returns the keys judged but left unusable."""
    good = json.loads(writer.shards[0][0])

    def variant(number: int, **changes: object) -> str:
        record = good | {"item_id": f"B0BROKEN{number:02d}"}
        record |= changes
        return json.dumps({k: v for k, v in record.items() if v is not None})

    broken_image = "UNDECODABLE"
    lines = [
        '{"item_id": "B0BROKEN00", "domain_name": "amazon.com", "item_name": [',
        '["a JSON array, not a listing"]',
        variant(1, domain_name=None),
        variant(2, item_name=[{"language_tag": "en_US", "value": "  "}]),
        variant(3, product_type=None),
        variant(4, product_type=[{"value": "CELLULAR_PHONE_CASE"}]),
        variant(5, main_image_id=None),
        variant(6, main_image_id="NOTINDEXED1"),
        variant(7, main_image_id="MISSINGFILE"),
        variant(8, main_image_id=broken_image),
        variant(10, main_image_id="BOMBIMAGE01"),
        writer.shards[0][0],  # a duplicate of the first listing
    ]
    writer.shards[-1].extend(lines)
    writer.image_rows += [
        ("MISSINGFILE", 96, 96, "zz/missing.jpg"),
        (broken_image, 96, 96, "zz/undecodable.jpg"),
        ("BADROW00001", "tall", 96, "zz/badrow.jpg"),
        ("BOMBIMAGE01", 96, 96, "zz/bomb.png"),
    ]
    _write(writer.root / IMAGES_DIR / "zz/undecodable.jpg", b"\xff\xd8 not really a jpeg")
    _write(writer.root / IMAGES_DIR / "zz/bomb.png", bomb_png())
    # A shard whose gzip stream is cut short: whatever decodes before the cut is unmapped.
    junk = variant(9, product_type=[{"value": "CELLULAR_PHONE_CASE"}])
    cut = _gzip(f"{junk}\n".encode() * 3)[:-12]
    _write(writer.root / LISTINGS_DIR / "listings_truncated.json.gz", cut)
    # Rooms: a class nobody mapped, a photo that is not an image, and a decompression bomb.
    stray = room_image(
        "kitchen", ("grey", "red"), "modern", writer.config.room_px, random.Random(0)
    )
    _save_jpeg(stray, writer.rooms_dir / "Garage" / "garage_000.jpg")
    _write(writer.rooms_dir / ROOM_FOLDERS[INDOOR_ROOMS[0]] / "corrupt_000.jpg", b"not a photo")
    _write(writer.rooms_dir / ROOM_FOLDERS[INDOOR_ROOMS[0]] / "bomb_000.png", bomb_png())
    return [listing_key("B0BROKEN08", HOME_DOMAIN)]


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG of a few bytes whose header announces side x side pixels: a decompression bomb's
    shape, over any sane `data.max_image_pixels` (the header alone must get it refused)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _manifest(config: WorldConfig, seed: int) -> dict:
    return {"version": WORLD_VERSION, "seed": seed, "world": asdict(config)}


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _world_paths(data: DataConfig) -> tuple[Path, Path, Path]:
    """raw_dir, and rooms_dir / truth_file relative to it (they must live inside it)."""
    root = Path(data.raw_dir).resolve()
    inside = []
    for name in ("rooms_dir", "truth_file"):
        path = Path(getattr(data, name)).resolve()
        if not getattr(data, name) or not path.is_relative_to(root) or path == root:
            raise ValueError(
                f"data.{name} must lie inside data.raw_dir ({root}) for the generated world, "
                f"got {getattr(data, name)!r}"
            )
        inside.append(path.relative_to(root))
    return root, inside[0], inside[1]


def _swap_in(staging: Path, root: Path) -> None:
    """Replace `root` by the finished `staging` folder (rename, then drop the old one)."""
    old = root.with_name(f".{root.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    staging.rename(root)
    shutil.rmtree(old, ignore_errors=True)


def generate_world(data: DataConfig) -> WorldSummary:
    """Write the world into data.raw_dir unless the same world (settings, seed) is there."""
    root, rooms_rel, truth_rel = _world_paths(data)
    config = data.world
    products = sample_products(config, data.seed)
    rooms = sample_rooms(config, data.seed)
    manifest = _manifest(config, data.seed)
    listings = sum(len(product.domains) for product in products)
    summary = WorldSummary(str(root), listings, len(products), len(rooms), 0, generated=False)
    previous = _read_manifest(root / MANIFEST)
    if previous and {key: previous.get(key) for key in manifest} == manifest:
        summary.truth_rows = previous["truth_rows"]
        return summary
    if previous is None and root.exists() and any(root.iterdir()):
        raise ValueError(
            f"data.raw_dir {root} holds files the world generator did not write (no {MANIFEST}); "
            "point data.raw_dir at an empty or generated folder, or use data=abo for real data"
        )
    staging = root.with_name(f".{root.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    writer = WorldWriter(staging, staging / rooms_rel, staging / truth_rel, config, data.seed)
    writer.product_images(products)
    writer.listings(products)
    writer.rooms(rooms)
    orphans = add_broken_records(writer) if config.broken_records else []
    summary.truth_rows = writer.truth(rooms, products, orphans)
    writer.finish()
    (staging / MANIFEST).write_text(
        json.dumps(manifest | {"truth_rows": summary.truth_rows}, indent=1)
    )
    root.parent.mkdir(parents=True, exist_ok=True)
    _swap_in(staging, root)
    summary.generated = True
    return summary
