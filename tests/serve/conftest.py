"""The serve tests' shared service: the session's indexed world with an upload limit over
starlette's 1 MB multipart spool, so a test can show accepted uploads stay in memory; a room
photo to search with; and a served student (an OpenAI-compatible server running the tiny
student in this process) that a test can slow down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from live_service import UPLOAD_LIMIT, running_service
from support.chat_server import ChatServer, ServedModel

from mars_core.app.compose import load_config
from mars_core.models.loading import load_vlm


@pytest.fixture(scope="session")
def live_service(indexed) -> Iterator[str]:
    """The base URL of a service on 127.0.0.1 (serve.max_upload_bytes=UPLOAD_LIMIT)."""
    cfg = load_config([*indexed.overrides, f"serve.max_upload_bytes={UPLOAD_LIMIT}"])
    with running_service(cfg) as url:
        yield url


@pytest.fixture(scope="session")
def room_photo(indexed) -> bytes:
    rows = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    return Path(rows[0]["path"]).read_bytes()


@pytest.fixture(scope="module")
def student_server(cfg, model_cache) -> Iterator[ChatServer]:
    """The tiny student behind an OpenAI-compatible server; `delay_s` slows every answer."""
    loaded = load_vlm(cfg.student, model_cache)
    with ChatServer(model=ServedModel(loaded.model, loaded.processor)) as server:
        yield server
