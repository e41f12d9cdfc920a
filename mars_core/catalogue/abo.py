"""Readers for the Amazon Berkeley Objects (ABO) file layout, as its archives extract:

    listings/metadata/listings_<i>.json.gz   gzip NDJSON, one listing per line
    images/metadata/images.csv.gz            image_id,height,width,path
    images/small/<path>                      the images (longest side 256 px)

Bad lines are quarantined, never fatal; only a folder that is not this layout at all stops
the run (`NotAboLayoutError`), because then nothing in it can be trusted.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mars_core.catalogue.quarantine import Quarantine, Reason

LISTINGS_DIR = Path("listings/metadata")
LISTINGS_GLOB = "listings_*.json.gz"
IMAGES_CSV = Path("images/metadata/images.csv.gz")
IMAGES_DIR = Path("images/small")
IMAGES_CSV_COLUMNS = ("image_id", "height", "width", "path")

EXPECTED = (
    f"{LISTINGS_DIR}/{LISTINGS_GLOB}, {IMAGES_CSV} and {IMAGES_DIR}/<path> "
    "(what abo-listings.tar and abo-images-small.tar extract to)"
)


class NotAboLayoutError(ValueError):
    """The input folder is not an ABO layout: the whole ingest stops with this message."""


@dataclass(frozen=True)
class AboLayout:
    """The files of one ABO tree."""

    root: Path
    shards: tuple[Path, ...]
    images_csv: Path
    images_dir: Path

    @classmethod
    def find(cls, root: Path) -> AboLayout:
        """The layout under `root`, or NotAboLayoutError naming what is missing."""
        root = Path(root).resolve()
        if not root.is_dir():
            raise NotAboLayoutError(f"ABO folder {root} does not exist; expected {EXPECTED}")
        shards = tuple(sorted((root / LISTINGS_DIR).glob(LISTINGS_GLOB)))
        missing = [
            str(path)
            for path, present in (
                (LISTINGS_DIR / LISTINGS_GLOB, bool(shards)),
                (IMAGES_CSV, (root / IMAGES_CSV).is_file()),
                (IMAGES_DIR, (root / IMAGES_DIR).is_dir()),
            )
            if not present
        ]
        if missing:
            raise NotAboLayoutError(
                f"{root} is not an ABO layout: missing {', '.join(missing)}; expected {EXPECTED}"
            )
        return cls(root, shards, root / IMAGES_CSV, root / IMAGES_DIR)


@dataclass(frozen=True)
class ImageRecord:
    """One row of images.csv.gz."""

    image_id: str
    height: int
    width: int
    path: str  # relative to images/small


def read_image_index(path: Path, quarantine: Quarantine) -> dict[str, ImageRecord]:
    """image_id -> its row; rows without an id, a path or integer sizes are quarantined.

    A broken gzip or CSV stream ends the file like a broken listing shard: what follows is
    recorded once as lost, and the listings whose images were there are quarantined later
    as not indexed, each with its own reason.
    """
    source = str(IMAGES_CSV)
    index: dict[str, ImageRecord] = {}
    line = 1
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != IMAGES_CSV_COLUMNS:
                raise NotAboLayoutError(
                    f"{path} has columns {reader.fieldnames}; ABO's images.csv.gz has "
                    f"{','.join(IMAGES_CSV_COLUMNS)}"
                )
            for line, row in enumerate(tqdm(reader, desc="images.csv", unit=" rows"), start=2):
                record = _image_record(row, source, line, quarantine)
                if record is not None:
                    index[record.image_id] = record
    except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as error:
        detail = f"{type(error).__name__}: {error}; rows after {line} are lost"
        quarantine.add(source, Reason.SHARD_UNREADABLE, line=line + 1, detail=detail)
    return index


def _image_record(row: dict, source: str, line: int, quarantine: Quarantine) -> ImageRecord | None:
    try:
        record = ImageRecord(
            row["image_id"].strip(), int(row["height"]), int(row["width"]), row["path"]
        )
    except (TypeError, ValueError, AttributeError) as error:
        quarantine.add(source, Reason.BAD_IMAGE_ROW, line=line, detail=str(error))
        return None
    if not record.image_id or not record.path:
        quarantine.add(source, Reason.BAD_IMAGE_ROW, line=line, detail="empty id or path")
        return None
    return record


def shard_source(shard: Path) -> str:
    """How a shard is named in the quarantine table (relative to the ABO root)."""
    return str(LISTINGS_DIR / shard.name)


def read_shard(shard: Path, quarantine: Quarantine) -> Iterator[tuple[int, dict]]:
    """(line number, listing object) for each good line; bad lines go to quarantine.

    Lines are parsed one by one from bytes, so one bad line (invalid JSON or UTF-8) costs
    only itself. A broken gzip stream ends the shard: what follows is lost and recorded once.
    """
    source = shard_source(shard)
    line = 0
    try:
        with gzip.open(shard, "rb") as handle:
            lines = tqdm(handle, desc=shard.name, unit=" lines")
            for line, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError as error:
                    quarantine.add(source, Reason.MALFORMED_JSON, line=line, detail=str(error))
                    continue
                if not isinstance(record, dict):
                    detail = f"a JSON {type(record).__name__}, not an object"
                    quarantine.add(source, Reason.MALFORMED_RECORD, line=line, detail=detail)
                    continue
                yield line, record
    except (OSError, EOFError, zlib.error) as error:
        detail = f"{type(error).__name__}: {error}; lines after {line} are lost"
        quarantine.add(source, Reason.SHARD_UNREADABLE, line=line + 1, detail=detail)
