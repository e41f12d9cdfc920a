"""What an HTTP request may send: each check raises a `UserInputError` naming the problem.

The same checks as the command line (`load_image`'s pixel limit, `check_query` with the
funnel's query limits), plus the limits only a service needs (upload bytes, k). `status_of`
maps each error to the HTTP status a client should get. `BodyLimit` bounds a whole request
body, announced or streamed, so that the multipart parser can keep every accepted upload in
memory: nothing a client sends is written to disk (starlette would otherwise spool uploads
over 1 MB to the system's temp folder).
"""

from __future__ import annotations

from PIL import Image
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mars_core.app.serve.api import (
    BAD_REQUEST,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNPROCESSABLE,
    UNSUPPORTED_MEDIA_TYPE,
    send_error,
)
from mars_core.config import ServeConfig
from mars_core.infra.errors import (
    BadImageError,
    EmptyQueryError,
    ImageTooLargeError,
    ModelServerError,
    QueryTooLongError,
    UserInputError,
)

# The service checks a query exactly as the command line and the funnel do.
from mars_core.search.query import check_query as check_query
from mars_core.vision.images import load_image_bytes


class UploadTooLargeError(UserInputError):
    """An upload (or a whole request body) over `serve.max_upload_bytes`."""


class BadParameterError(UserInputError):
    """A form field of the right type with a value outside what is accepted (k)."""


class UnknownItemError(UserInputError):
    """A product key or sample room id that is not in the catalogue's tables."""


def status_of(error: UserInputError) -> int:
    """The HTTP status of a user's mistake: size 413, not an image 415, bad field 422; the
    agent's model server not answering is 503."""
    if isinstance(error, UploadTooLargeError | ImageTooLargeError):
        return PAYLOAD_TOO_LARGE
    if isinstance(error, BadImageError):
        return UNSUPPORTED_MEDIA_TYPE
    if isinstance(error, EmptyQueryError | QueryTooLongError | BadParameterError):
        return UNPROCESSABLE
    if isinstance(error, UnknownItemError):
        return NOT_FOUND
    if isinstance(error, ModelServerError):
        return SERVICE_UNAVAILABLE
    return BAD_REQUEST


def check_upload_size(size: int, limits: ServeConfig) -> None:
    """Refuse an upload over the byte limit before decoding it."""
    if size > limits.max_upload_bytes:
        raise UploadTooLargeError(
            f"the room photo is over the upload limit of {limits.max_upload_bytes:,} bytes "
            "(serve.max_upload_bytes); send a smaller photo"
        )


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes, and keep accepted ones in memory.

    A body whose `Content-Length` is over the limit is answered 413 before it is read; a
    streamed (chunked) body is cut off with 413 as soon as it passes the limit. Since no
    accepted body is larger, the multipart parser's in-memory spool is raised to the limit
    (never lowered: it is starlette's class-wide setting), so uploads never roll over to a
    temp file outside the service's folder.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:
            return await send_error(send, PAYLOAD_TOO_LARGE, self._too_large(f"{int(length):,}"))
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(PAYLOAD_TOO_LARGE, self._too_large(f"over {self.limit:,}"))
            return message

        return await self.app(scope, bounded_receive, send)

    def _too_large(self, size: str) -> str:
        return (
            f"the request body is {size} bytes, over the limit of {self.limit:,} "
            "(serve.max_upload_bytes plus the form); send a smaller photo"
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
