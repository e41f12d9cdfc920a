"""Servers the tests start as processes (Prefect's, MLflow's UI): waiting until one answers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_healthy(
    url: str, process: subprocess.Popen, log: Path, *, what: str, within_s: float
) -> None:
    """Poll `url`/health until it answers 200; fail with the server's log if the process
    exits first or `within_s` pass."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not up after {within_s} s:\n{log.read_text()}")
