"""Check that an image file exists and decodes, and fingerprint its bytes.

Used for product images and room photos alike: a listing whose image cannot be opened is of
no use to the visual stages, so it is quarantined at ingest rather than failing later. The
check itself is the shared one of `mars_core.vision.images`, so ingest accepts exactly the images
the embedder and the agent can load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mars_core.infra.errors import ImageMissingError
from mars_core.vision.images import verify_image

# Decode at a reduced scale where the format allows it (JPEG DCT scaling): every byte of the
# file is still read, so truncation is caught, at a fraction of the full decode's cost.
CHECK_DRAFT_PX = 64


@dataclass(frozen=True)
class ImageFile:
    width: int
    height: int
    sha256: str  # of the file's bytes: part of the content hash


def inspect_image(path: Path, max_pixels: int) -> ImageFile:
    """Size and byte hash of a decodable image within the pixel limit; raises
    `ImageMissingError`, `BadImageError` or `ImageTooLargeError` (the `ImageError` family of
    `mars_core.infra.errors`). The file is read once, for the hash and the check."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise ImageMissingError(f"{path}: {type(error).__name__}") from error
    width, height = verify_image(path, max_pixels, data=data, draft_px=CHECK_DRAFT_PX)
    return ImageFile(width=width, height=height, sha256=hashlib.sha256(data).hexdigest())
