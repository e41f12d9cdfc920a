"""The serve tests' shared service: the session's indexed world with an upload limit over
starlette's 1 MB multipart spool, so a test can show accepted uploads stay in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_service import UPLOAD_LIMIT, running_service

from mars_core.app.compose import load_config


@pytest.fixture(scope="session")
def live_service(indexed) -> Iterator[str]:
    """The base URL of a service on 127.0.0.1 (serve.max_upload_bytes=UPLOAD_LIMIT)."""
    cfg = load_config([*indexed.overrides, f"serve.max_upload_bytes={UPLOAD_LIMIT}"])
    with running_service(cfg) as url:
        yield url
