"""The search service over real HTTP on 127.0.0.1: uvicorn in a thread, for the serve tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from mars_core.app.serve.app import create_app
from mars_core.config import MarsConfig

START_TIMEOUT_S = 120.0
# The shared service's upload limit: over starlette's 1 MB multipart spool.
UPLOAD_LIMIT = 2_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_service(cfg: MarsConfig) -> Iterator[str]:
    """The service for `cfg` listening on a free local port; yields its base URL."""
    config = uvicorn.Config(
        create_app(cfg), host="127.0.0.1", port=free_port(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
