"""A small deterministic catalogue in the ingest's exact schema, for index tests and bench/.

Until the generated world of the ingest flow is available, tests build their catalogue here:
rows follow `CATALOGUE_SCHEMA` field for field, images are tiny noise PNGs on disk (distinct
per product, tinted by category), and some products name another category in their text
("a slim table to stand behind the sofa", "a dog bed") so a category lock has something to
keep out. Tests take a (catalogue parquet, folder) pair, so switching them to the generated
world is a change of fixture.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from mars_core.catalogue.changes import content_hash
from mars_core.catalogue.schema import CATALOGUE_FILE, CATALOGUE_SCHEMA
from mars_core.infra.io import atomic_write_parquet

DOMAIN = "amazon.com"
IMAGE_SIZE = 32
# category -> (noun, tint, a sentence that mentions another category or none)
CATEGORIES: dict[str, tuple[str, tuple[int, int, int], str]] = {
    "BED": ("bed", (200, 180, 150), "Fits a standard mattress."),
    "SOFA": ("sofa", (60, 90, 160), "Seats three."),
    "CHAIR": ("armchair", (150, 60, 60), "Pairs with a sofa or a reading lamp."),
    "TABLE": ("table", (120, 80, 40), "A slim table to stand behind the sofa."),
    "LAMP": ("lamp", (230, 220, 120), "A bedside lamp for the nightstand."),
    "RUG": ("rug", (90, 140, 90), "Lies under the bed or in front of the sofa."),
    "NIGHTSTAND": ("nightstand", (170, 140, 110), "One drawer, sits next to the bed."),
    "OUTDOOR_LOUNGE_CHAIR": ("lounger", (40, 170, 200), "Weatherproof, for the pool deck."),
    "PATIO_TABLE": ("patio table", (100, 160, 100), "Outdoor table, rust-proof."),
    "PET_BED": ("dog bed", (160, 120, 160), "A cosy bed for pets, not for people."),
}
COLORS = ["blue", "red", "green", "grey", "white", "black", "beige", "orange", "pink", "yellow"]
MATERIALS = ["velvet", "oak", "walnut", "linen", "leather", "metal", "rattan", "wool", "marble"]
STYLES = ["modern", "rustic", "minimalist", "industrial", "classic", "scandinavian", "bohemian"]
BRANDS = ["Rivet", "Stone & Beam", "Ravenna Home", "AmazonBasics", "Movian"]


def image_content_hash(row: dict, image_bytes: bytes) -> str:
    """The row's `content_hash` as ingest computes it, from the image file's bytes."""
    return content_hash(row, hashlib.sha256(image_bytes).hexdigest())


def product_image(seed: int, tint: tuple[int, int, int]) -> Image.Image:
    """Noise around a category tint: every product looks different, categories differ in hue."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-90, 90, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    pixels = np.clip(np.array(tint) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def product_row(index: int, seed: int, images: Path, *, write_image: bool) -> dict:
    """One product, a function of (index, seed) only."""
    rng = random.Random(seed * 1_000_003 + index)
    category = list(CATEGORIES)[index % len(CATEGORIES)]
    noun, tint, sentence = CATEGORIES[category]
    color, material, style = rng.choice(COLORS), rng.choice(MATERIALS), rng.choice(STYLES)
    item_id = f"B{seed:02d}{index:08d}"
    name = f"{style.title()} {color} {material} {noun}"
    description = f"A {style} {noun} in {color} {material}. {sentence}"
    keywords = [noun, color, material, style]
    search_text = " ".join([name, color, material, style, *keywords, description])
    image = product_image(seed * 1_000_003 + index, tint)
    data = png_bytes(image)
    path = images / f"{item_id}.png"
    if write_image:
        path.write_bytes(data)
    row = {
        "key": f"{item_id}@{DOMAIN}",
        "item_id": item_id,
        "domain": DOMAIN,
        "name": name,
        "category": category,
        "product_type": category,
        "brand": rng.choice(BRANDS),
        "color": color,
        "material": material,
        "style": style,
        "keywords": keywords,
        "description": description,
        "search_text": search_text,
        "image_id": item_id,
        "image_path": str(path),
        "image_width": IMAGE_SIZE,
        "image_height": IMAGE_SIZE,
        "language": "en_US",
        "source": "catalogue_factory",
    }
    row["content_hash"] = image_content_hash(row, data)
    return row


def write_table(rows: list[dict], path: Path) -> Path:
    """Write rows in the catalogue schema (aside, then renamed, like the ingest does)."""
    return atomic_write_parquet(path, pa.Table.from_pylist(rows, schema=CATALOGUE_SCHEMA))


def write_catalogue(folder: Path, n: int, *, seed: int = 0, write_images: bool = True) -> Path:
    """`folder/catalogue.parquet` with `n` products; images under `folder/images/`.

    Without images (bench/ at 100k products) the paths are still filled in, pointing nowhere.
    """
    catalogue = folder / CATALOGUE_FILE
    images = image_dir(catalogue)
    rows = [product_row(i, seed, images, write_image=write_images) for i in range(n)]
    return write_table(rows, catalogue)


def image_dir(catalogue: Path) -> Path:
    """Where changes to a catalogue put their new images: beside that catalogue."""
    folder = catalogue.parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_rows(catalogue: Path) -> list[dict]:
    return pq.read_table(catalogue).to_pylist()


def change_products(catalogue: Path, keys: Iterable[str], *, tag: str = "renewed") -> Path:
    """Give `keys` new text and a new image (new files, new hashes); other rows untouched."""
    keys = set(keys)
    rows = read_rows(catalogue)
    for number, row in enumerate(rows):
        if row["key"] not in keys:
            continue
        image = product_image(10_000_000 + number, (255, 255, 255))
        data = png_bytes(image)
        path = image_dir(catalogue) / f"{row['item_id']}-{tag}.png"
        path.write_bytes(data)
        row["description"] = f"{row['description']} {tag.title()} edition."
        row["search_text"] = f"{row['search_text']} {tag}"
        row["image_path"] = str(path)
        row["content_hash"] = image_content_hash(row, data)
    return write_table(rows, catalogue)


def remove_products(catalogue: Path, keys: Iterable[str]) -> Path:
    keys = set(keys)
    return write_table([r for r in read_rows(catalogue) if r["key"] not in keys], catalogue)


def add_products(catalogue: Path, n: int, *, seed: int) -> Path:
    """Append `n` products of another seed (new keys) to the catalogue."""
    new = [product_row(i, seed, image_dir(catalogue), write_image=True) for i in range(n)]
    return write_table(read_rows(catalogue) + new, catalogue)


def break_image(catalogue: Path, key: str) -> Path:
    """Point `key` at a new image file that is not an image (as a failed download leaves it)."""
    rows = read_rows(catalogue)
    (row,) = [r for r in rows if r["key"] == key]
    path = image_dir(catalogue) / f"{row['item_id']}-broken.png"
    data = b"\x89PNG\r\n\x1a\n this is not the rest of a png"
    path.write_bytes(data)
    row["image_path"] = str(path)
    row["content_hash"] = image_content_hash(row, data)
    write_table(rows, catalogue)
    return path


def move_image(catalogue: Path, key: str) -> Path:
    """Copy `key`'s image to a new file and point the row at it: same bytes, same hash."""
    rows = read_rows(catalogue)
    (row,) = [r for r in rows if r["key"] == key]
    path = image_dir(catalogue) / f"{row['item_id']}-moved.png"
    path.write_bytes(Path(row["image_path"]).read_bytes())
    row["image_path"] = str(path)
    write_table(rows, catalogue)
    return path
