"""Uploads stay in memory: a body over starlette's 1 MB spool is parsed without a temp file,
and a streamed body over the limit is refused while it arrives."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import httpx
import pytest
from live_service import UPLOAD_LIMIT
from starlette.formparsers import MultiPartParser

pytestmark = pytest.mark.slow

CHUNK = 64 * 1024
SPOOL_DEFAULT = 1024 * 1024  # starlette's in-memory spool before it writes a temp file


def multipart(photo_bytes: int) -> tuple[dict[str, str], bytes]:
    """A `room` upload of `photo_bytes` bytes (not an image) and a query, as one body."""
    boundary = "mars-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="query"\r\n\r\nbed\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="room"; filename="room.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode(),
        b"x" * photo_bytes,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, b"".join(parts)


def chunks(body: bytes) -> Iterator[bytes]:
    """The body as a stream: httpx sends it chunked, with no Content-Length to check."""
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def test_an_upload_over_the_default_spool_is_read_without_a_temp_file(live_service, tmp_path):
    assert MultiPartParser.spool_max_size >= UPLOAD_LIMIT
    headers, body = multipart(UPLOAD_LIMIT - SPOOL_DEFAULT // 2)
    assert len(body) > SPOOL_DEFAULT
    missing = tmp_path / "no-temp-folder"
    before = tempfile.tempdir
    tempfile.tempdir = str(missing)  # a spool rolled over to disk would fail to open its file
    try:
        for content in (body, chunks(body)):
            answer = httpx.post(
                f"{live_service}/search", headers=headers, content=content, timeout=60
            )
            assert answer.status_code == 415, answer.text  # parsed in memory, then refused
            assert "is not an image" in answer.json()["error"]
    finally:
        tempfile.tempdir = before
    assert not os.path.exists(missing)


def test_a_streamed_body_over_the_limit_is_refused(live_service):
    headers, body = multipart(UPLOAD_LIMIT + CHUNK)
    answer = httpx.post(f"{live_service}/search", headers=headers, content=chunks(body), timeout=60)
    assert answer.status_code == 413, answer.text
    assert "over the limit" in answer.json()["error"]
