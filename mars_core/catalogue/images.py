"""Check that an image file exists and decodes, and fingerprint its bytes.

Used for product images and room photos alike: a listing whose image cannot be opened is of
no use to the visual stages, so it is quarantined at ingest rather than failing later. The
check itself is the shared one of `mars_core.images`, so ingest accepts exactly the images
the embedder and the agent can load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mars_core.errors import BadImageError, ImageTooLargeError
from mars_core.images import verify_image

# Decode at a reduced scale where the format allows it (JPEG DCT scaling): every byte of the
# file is still read, so truncation is caught, at a fraction of the full decode's cost.
CHECK_DRAFT_PX = 64


class ImageMissing(Exception):
    """No readable file at the path."""


class ImageUndecodable(Exception):
    """A file is there but it is not an image we can decode."""


class ImageOverLimit(Exception):
    """The image announces more pixels than `data.max_image_pixels` (or is a decompression bomb)."""


@dataclass(frozen=True)
class ImageFile:
    width: int
    height: int
    sha256: str  # of the file's bytes: part of the content hash


def inspect_image(path: Path, max_pixels: int) -> ImageFile:
    """Size and byte hash of a decodable image within the pixel limit; raises ImageMissing,
    ImageUndecodable or ImageOverLimit. The file is read once, for the hash and the check."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise ImageMissing(f"{path}: {type(error).__name__}") from error
    try:
        width, height = verify_image(path, max_pixels, data=data, draft_px=CHECK_DRAFT_PX)
    except ImageTooLargeError as error:
        raise ImageOverLimit(str(error)) from error
    except BadImageError as error:
        raise ImageUndecodable(str(error)) from error
    return ImageFile(width=width, height=height, sha256=hashlib.sha256(data).hexdigest())
