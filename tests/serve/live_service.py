"""The search service over real HTTP on 127.0.0.1, for the serve tests: uvicorn in a thread
(the service's own `DrainingServer`), or `mars-serve` as a process of its own; and the check
that an answer is what the OpenAPI schema declares for it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from mars_core.app.serve import api
from mars_core.app.serve.app import create_app
from mars_core.app.serve.shutdown import DrainingServer
from mars_core.config import MarsConfig

START_TIMEOUT_S = 120.0
# The shared service's upload limit: over starlette's 1 MB multipart spool.
UPLOAD_LIMIT = 2_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveService:
    url: str
    app: FastAPI
    server: DrainingServer
    thread: threading.Thread


@contextmanager
def live(cfg: MarsConfig) -> Iterator[LiveService]:
    """The service for `cfg` listening on a free local port, with its app and server."""
    app = create_app(cfg)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = DrainingServer(config, drain=app.state.drain, drain_s=cfg.serve.drain_s)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    try:
        yield LiveService(f"http://127.0.0.1:{config.port}", app, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_service(cfg: MarsConfig) -> Iterator[str]:
    """The service for `cfg` listening on a free local port; yields its base URL."""
    with live(cfg) as service:
        yield service.url


@contextmanager
def serve_process(overrides: list[str], log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`mars-serve` as its own process (this session's MARS_HOME and PYTHONPATH); yields it
    and its URL once /health answers; killed if still running at the end."""
    port = free_port()
    command = [sys.executable, "-m", "mars_core.app.commands.serve", *overrides]
    command.append(f"serve.port={port}")
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(f"{url}/health"):
            assert process.poll() is None, f"mars-serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "mars-serve did not start"
            time.sleep(0.2)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def served_student(endpoint: str) -> list[str]:
    """Overrides of a funnel whose agent is the student served at `endpoint` (as
    `student=vllm` has it)."""
    return [
        "student.kind=openai",
        f"student.server.endpoint={endpoint}",
        "student.server.timeout=60",
        "student.server.retries=0",
        "student.top_logprobs=1000",  # the random tiny student's digits are rarely in its top 20
    ]


def in_flight(url: str) -> float:
    """The service's `mars_searches_in_flight`, scraped."""
    return scrape(url)[("mars_searches_in_flight", ())]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, read by Prometheus' own text parser: (name, labels) -> value."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def assert_declared(openapi: dict, method: str, path: str, answer: httpx.Response) -> None:
    """The schema declares `answer`'s status on the route, and its body is the declared model's
    (every field the model has, no other)."""
    declared = openapi["paths"][path][method]["responses"]
    status = str(answer.status_code)
    assert status in declared, f"{method.upper()} {path} does not declare {status}: {declared}"
    content = declared[status].get("content", {})
    if not answer.headers["content-type"].startswith("application/json"):
        kind = answer.headers["content-type"].split(";")[0]
        assert any(kind.startswith(media.rstrip("*")) for media in content), (kind, content)
        return
    schema = content["application/json"]["schema"]
    listed = schema.get("type") == "array"
    model = getattr(api, (schema["items"] if listed else schema)["$ref"].rsplit("/", 1)[1])
    for item in answer.json() if listed else [answer.json()]:
        model.model_validate(item)
        assert set(item) == set(model.model_fields), (set(item), set(model.model_fields))
