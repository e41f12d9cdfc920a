"""Loading user and catalogue images safely: one place that knows what a bad image looks like.

The pixel limit is checked on the header, before any pixel is decoded, so a decompression bomb
(a small file that decodes to gigapixels) is refused without allocating it. PIL's own bomb
guard (`Image.MAX_IMAGE_PIXELS`) is kept as a second line: its warning is turned into an error.
Every caller (ingest's check, the embedder, the agent, search requests, the HTML report) goes
through here, so an image accepted by one stage is accepted, and seen upright, by all of them.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mars_core.infra.errors import (
    BadImageError,
    ImageMissingError,
    ImageTooLargeError,
    UserInputError,
)

ACCEPTED = "a photo file PIL can read (JPEG, PNG, WebP, ...)"
# PIL names an in-memory buffer (with its address) in some messages: drop it, so the same bad
# file gives the same message (and quarantine row) on every run.
OBJECT_REPR = re.compile(r"\s*<[^>]* at 0x[0-9a-f]+>")


def load_image(path: str | Path, max_pixels: int) -> Image.Image:
    """Decode `path` into an upright RGB image of at most `max_pixels` pixels.

    Raises `ImageMissingError`, `BadImageError` (not an image, truncated) or
    `ImageTooLargeError` (all `ImageError`s), each
    with a one-line message naming the file, the problem and what is accepted.
    """
    path = _existing(path)
    with opened(path, max_pixels) as image:
        return _upright_rgb(image)


def check_image(path: str | Path, max_pixels: int) -> None:
    """The cheap check of an image a user names, made before anything heavy loads: the file is
    there, PIL recognises its format and its header is within `max_pixels`. Its pixels are
    decoded once, later, by the `load_image` that uses them (a truncated file fails there)."""
    with opened(_existing(path), max_pixels):
        return


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImageMissingError(
            f"image {str(path)!r} does not exist or is not a file; give {ACCEPTED}"
        )
    return path


def load_image_bytes(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """`load_image` for bytes already in memory (an upload): the same checks and messages,
    with `name` standing for the file; nothing is written to disk."""
    with opened(Path(name), max_pixels, data=data) as image:
        return _upright_rgb(image)


def _upright_rgb(image: Image.Image) -> Image.Image:
    image.load()
    return ImageOps.exif_transpose(image).convert("RGB")


def verify_image(
    path: str | Path, max_pixels: int, *, data: bytes | None = None, draft_px: int | None = None
) -> tuple[int, int]:
    """Check that an image decodes completely within the limit, keeping nothing; its header size.

    `data` is the file's bytes when the caller already read them (ingest hashes them too).
    `draft_px` lets formats that can (JPEG DCT scaling) decode at about that size: every byte
    is still read, so truncation is caught, at a fraction of a full decode's cost.
    """
    with opened(Path(path), max_pixels, data=data) as image:
        size = image.size
        if draft_px:
            image.draft("RGB", (draft_px, draft_px))
        image.load()
        return size


@contextmanager
def opened(path: Path, max_pixels: int, *, data: bytes | None = None) -> Iterator[Image.Image]:
    """The image, opened lazily after its header passed the pixel limit; decoding errors raised
    inside the block become `BadImageError` / `ImageTooLargeError` naming `path`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data) if data is not None else path) as image:
                check_pixels(path, image.size, max_pixels)
                yield image
        except UserInputError:
            raise  # already ours (the header check): not a decoding failure
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
            raise ImageTooLargeError(
                f"image {str(path)!r} is refused as a decompression bomb ({e}); give a photo of "
                f"at most {limit:,} pixels"
            ) from e
        except UnidentifiedImageError as e:
            raise BadImageError(f"{str(path)!r} is not an image; give {ACCEPTED}") from e
        except (OSError, SyntaxError, ValueError) as e:
            reason = OBJECT_REPR.sub("", f"{type(e).__name__}: {e}")
            raise BadImageError(
                f"image {str(path)!r} cannot be decoded ({reason}); give a complete, uncorrupted "
                f"photo: {ACCEPTED}"
            ) from e


def check_pixels(path: str | Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an image whose header announces more than `max_pixels` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image {str(path)!r} is {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,}; give a photo of at most {max_pixels:,} pixels (resize it)"
        )
