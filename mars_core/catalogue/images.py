"""Check that an image file exists and decodes, and fingerprint its bytes.

Used for product images and room photos alike: a listing whose image cannot be opened is of
no use to the visual stages, so it is quarantined at ingest rather than failing later.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Decode at a reduced scale where the format allows it (JPEG DCT scaling): every byte of the
# file is still read, so truncation is caught, at a fraction of the full decode's cost.
CHECK_DRAFT_PX = (64, 64)
# PIL names the in-memory buffer (with its address) in some messages: drop it, so the same
# bad file gives the same quarantine row on every run.
OBJECT_REPR = re.compile(r"\s*<[^>]* at 0x[0-9a-f]+>")


class ImageMissing(Exception):
    """No readable file at the path."""


class ImageUndecodable(Exception):
    """A file is there but it is not an image we can decode."""


@dataclass(frozen=True)
class ImageFile:
    width: int
    height: int
    sha256: str  # of the file's bytes: part of the content hash


def inspect_image(path: Path) -> ImageFile:
    """Size and byte hash of a decodable image; raises ImageMissing or ImageUndecodable."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise ImageMissing(f"{path}: {type(error).__name__}") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", CHECK_DRAFT_PX)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        message = OBJECT_REPR.sub("", str(error))
        raise ImageUndecodable(f"{path.name}: {type(error).__name__}: {message}") from error
    return ImageFile(width=width, height=height, sha256=hashlib.sha256(data).hexdigest())
