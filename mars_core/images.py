"""Loading user and catalogue images safely: one place that knows what a bad image looks like.

The pixel limit is checked on the header, before any pixel is decoded, so a decompression bomb
(a small file that decodes to gigapixels) is refused without allocating it. PIL's own bomb
guard (`Image.MAX_IMAGE_PIXELS`) is kept as a second line: its warning is turned into an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mars_core.errors import BadImageError, ImageTooLargeError

ACCEPTED = "a photo file PIL can read (JPEG, PNG, WebP, ...)"


def load_image(path: str | Path, max_pixels: int) -> Image.Image:
    """Decode `path` into an upright RGB image of at most `max_pixels` pixels.

    Raises `BadImageError` (missing, not an image, truncated) or `ImageTooLargeError`, each
    with a one-line message naming the file, the problem and what is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(f"image {str(path)!r} does not exist or is not a file; give {ACCEPTED}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                check_pixels(path, image.size, max_pixels)
                image.load()
                return ImageOps.exif_transpose(image).convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
            raise ImageTooLargeError(
                f"image {str(path)!r} is refused as a decompression bomb ({e}); give a photo of "
                f"at most {limit:,} pixels"
            ) from e
        except UnidentifiedImageError as e:
            raise BadImageError(f"{str(path)!r} is not an image; give {ACCEPTED}") from e
        except OSError as e:
            raise BadImageError(
                f"image {str(path)!r} cannot be decoded ({e}); give a complete, uncorrupted "
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
