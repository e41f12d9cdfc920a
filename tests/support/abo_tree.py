"""Hand-made ABO trees for tests: real-shaped listings, images and every kind of oddity."""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

REAL_LISTING: dict[str, Any] = {
    "brand": [{"language_tag": "en_US", "value": "Rivet"}],
    "bullet_point": [
        {"language_tag": "en_US", "value": "Solid <b>rubberwood</b> frame &amp; slats"},
        {"language_tag": "en_US", "value": "No box spring needed"},
        {"language_tag": "de_DE", "value": "Massivholzrahmen"},
    ],
    "color": [{"language_tag": "en_US", "standardized_values": ["Blue"], "value": "Navy Blue"}],
    "country": "US",
    "domain_name": "amazon.com",
    "item_dimensions": {
        side: {"normalized_value": {"unit": "inches", "value": v}, "unit": "inches", "value": v}
        for side, v in (("height", 40.0), ("length", 80.0), ("width", 60.0))
    },
    "item_id": "B07HJZKG1V",
    "item_keywords": [
        {"language_tag": "en_US", "value": "bed frame"},
        {"language_tag": "en_US", "value": "platform bed, Queen Bed; bed frame"},
        {"language_tag": "de_DE", "value": "bettgestell"},
    ],
    "item_name": [
        {"language_tag": "de_DE", "value": "Rivet Bett aus Holz, Queen"},
        {"language_tag": "en_US", "value": "Rivet Mid-Century Wood Platform Bed, Queen, Navy"},
    ],
    "item_weight": [
        {"normalized_value": {"unit": "pounds", "value": 88.0}, "unit": "pounds", "value": 88.0}
    ],
    "main_image_id": "81iZlv3bjpL",
    "marketplace": "Amazon",
    "material": [
        {"language_tag": "en_US", "value": "Wood"},
        {"language_tag": "en_US", "value": "Metal"},
        {"language_tag": "en_US", "value": "Wood"},
    ],
    "model_number": [{"value": "RVT-BED-01"}],
    "model_year": [{"value": 2018}],
    "node": [
        {
            "node_id": 3733251,
            "node_name": "/Categories/Home & Kitchen/Furniture/Bedroom Furniture/Beds",
        }
    ],
    "other_image_id": ["71fY7r9GhsL", "81iZlv3bjpL", "61Qm2xkBnzL"],
    "product_description": [
        {
            "language_tag": "en_US",
            "value": "<p>A <i>mid-century</i> bed.</p><br/>Tapered legs &amp; a low profile.",
        }
    ],
    "product_type": [{"value": "BED"}],
    "spin_id": "0ba8c7b5",
    "style": [{"language_tag": "en_US", "value": "Mid-Century"}],
    "3dmodel_id": "B07HJZKG1V",
}  # fmt: skip


def listing(item_id: str, image_id: str, **changes: Any) -> dict[str, Any]:
    """A real-shaped listing with its own id and image; `field=None` removes a field."""
    record = copy.deepcopy(REAL_LISTING) | {"item_id": item_id, "main_image_id": image_id}
    record["other_image_id"] = []
    record |= changes
    return {key: value for key, value in record.items() if value is not None}


def jpeg_bytes(colour: tuple[int, int, int] = (30, 60, 200), px: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (px, px), colour).save(buffer, "JPEG")
    return buffer.getvalue()


class AboTree:
    """Builds an ABO folder: shards of lines, images.csv.gz rows and image files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.shards: dict[str, list[str]] = {}
        self.image_rows: list[list[Any]] = []
        self.files: dict[str, bytes] = {}

    def image(self, image_id: str, data: bytes | None = None, *, on_disk: bool = True) -> str:
        """Index an image (and write its file unless `on_disk` is False)."""
        path = f"{image_id[:2].lower()}/{image_id.lower()}.jpg"
        self.image_rows.append([image_id, 32, 32, path])
        if on_disk:
            self.files[path] = jpeg_bytes() if data is None else data
        return image_id

    def add(self, record: dict[str, Any] | str, shard: str = "listings_0.json.gz") -> int:
        """Append a listing (or a raw line) to a shard; returns its 1-based line number."""
        line = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
        self.shards.setdefault(shard, []).append(line)
        return len(self.shards[shard])

    def write(self) -> Path:
        metadata = self.root / "listings" / "metadata"
        metadata.mkdir(parents=True, exist_ok=True)
        for name, lines in self.shards.items():
            (metadata / name).write_bytes(gzip.compress("".join(f"{x}\n" for x in lines).encode()))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image_id", "height", "width", "path"])
        writer.writerows(self.image_rows)
        (self.root / "images" / "metadata").mkdir(parents=True, exist_ok=True)
        (self.root / "images" / "metadata" / "images.csv.gz").write_bytes(
            gzip.compress(text.getvalue().encode())
        )
        for path, data in self.files.items():
            target = self.root / "images" / "small" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (self.root / "images" / "small").mkdir(parents=True, exist_ok=True)
        return self.root
