"""What an HTTP request may send: each check raises a `UserInputError` naming the problem.

The same checks as the command line (`load_image`'s pixel limit, `check_query` with the
funnel's query limits), plus the limits only a service needs (upload bytes, k). `status_of`
maps each error to the HTTP status a client should get.
"""

from __future__ import annotations

from PIL import Image

from mars_core.config import ServeConfig
from mars_core.errors import (
    BadImageError,
    EmptyQueryError,
    ImageTooLargeError,
    QueryTooLongError,
    UserInputError,
)
from mars_core.images import load_image_bytes

# The service checks a query exactly as the command line and the funnel do.
from mars_core.search.query import check_query as check_query

BAD_REQUEST = 400
NOT_FOUND = 404
PAYLOAD_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
UNPROCESSABLE = 422


class UploadTooLargeError(UserInputError):
    """An upload (or a whole request body) over `serve.max_upload_bytes`."""


class BadParameterError(UserInputError):
    """A form field of the right type with a value outside what is accepted (k)."""


class UnknownItemError(UserInputError):
    """A product key or sample room id that is not in the catalogue's tables."""


def status_of(error: UserInputError) -> int:
    """The HTTP status of a user's mistake: size 413, not an image 415, bad field 422."""
    if isinstance(error, UploadTooLargeError | ImageTooLargeError):
        return PAYLOAD_TOO_LARGE
    if isinstance(error, BadImageError):
        return UNSUPPORTED_MEDIA_TYPE
    if isinstance(error, EmptyQueryError | QueryTooLongError | BadParameterError):
        return UNPROCESSABLE
    if isinstance(error, UnknownItemError):
        return NOT_FOUND
    return BAD_REQUEST


def check_upload_size(size: int, limits: ServeConfig) -> None:
    """Refuse an upload over the byte limit before decoding it."""
    if size > limits.max_upload_bytes:
        raise UploadTooLargeError(
            f"the room photo is over the upload limit of {limits.max_upload_bytes:,} bytes "
            "(serve.max_upload_bytes); send a smaller photo"
        )


def room_image(data: bytes, name: str, limits: ServeConfig, max_pixels: int) -> Image.Image:
    """The uploaded room photo as an upright RGB image, within both limits (bytes, pixels)."""
    check_upload_size(len(data), limits)
    if not data:
        raise BadImageError(f"the room photo {name!r} is empty; send a JPEG, PNG or WebP photo")
    return load_image_bytes(data, name, max_pixels)


def check_k(k: int | None, most: int) -> int:
    """How many products to return: 1 to the funnel's final size (default: all of them)."""
    if k is None:
        return most
    if not 1 <= k <= most:
        raise BadParameterError(f"k={k} must lie between 1 and {most} (funnel.k3)")
    return k
