"""A client of any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp).

Shared by the server teacher (`mars_core.teacher.remote`) and the served agent
(`mars_core.agent.remote`): one pooled HTTP client per server (several replicas of one model
share the work, each request going to the least busy), with at most `concurrency` requests in
flight on any one server, each waiting `timeout` seconds; a timeout, a dropped connection, a
429 or a 5xx is re-sent up to `retries` times, waiting `backoff` seconds doubled each time.
Images travel as base64 data URLs in the messages' `image_url` parts.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import httpx
from PIL import Image

JPEG_QUALITY = 90
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")
R = TypeVar("R")


class NoAnswerError(RuntimeError):
    """The server gave no usable HTTP answer after every re-send (the last problem is said)."""


class ServerSettings(Protocol):
    """What a served model's config (`teacher.server`, `student.server`) tells the client."""

    endpoint: str | None
    replicas: list[str]
    timeout: float
    concurrency: int
    retries: int
    backoff: float
    api_key_env: str


class ChatClient:
    """Chat completions at `endpoints` (`.../v1` base URLs of servers of one model), re-sent
    on transient failures.

    The thread pool has `concurrency` workers per server and each send takes the least busy
    server, so no server ever has more than `concurrency` requests in flight.
    """

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout: float,
        concurrency: int,
        retries: int,
        backoff: float,
        api_key_env: str = "",
        thread_name: str = "openai",
    ) -> None:
        headers = {}
        if api_key_env and os.environ.get(api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
        self.retries = retries
        self.backoff = backoff
        self.clients = [
            httpx.Client(
                base_url=str(endpoint).rstrip("/") + "/",
                timeout=timeout,
                headers=headers,
                limits=httpx.Limits(max_connections=concurrency),
            )
            for endpoint in endpoints
        ]
        self.in_flight = [0] * len(self.clients)
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(
            max_workers=concurrency * len(self.clients), thread_name_prefix=thread_name
        )

    @classmethod
    def for_servers(cls, settings: ServerSettings, thread_name: str) -> ChatClient:
        """A client of a config's endpoint and replicas, with its timeout, concurrency,
        re-sends and key."""
        return cls(
            [str(settings.endpoint), *settings.replicas],
            timeout=settings.timeout,
            concurrency=settings.concurrency,
            retries=settings.retries,
            backoff=settings.backoff,
            api_key_env=settings.api_key_env,
            thread_name=thread_name,
        )

    def post(self, body: dict[str, Any]) -> httpx.Response:
        """The server's response to one chat completion (any status but a transient one).

        Raises `NoAnswerError` when every send timed out, lost its connection or got a
        transient status.
        """
        problem = ""
        for send in range(self.retries + 1):
            if send:
                time.sleep(self.backoff * 2 ** (send - 1))
            try:
                with self.least_busy() as client:
                    response = client.post("chat/completions", json=body)
            except httpx.HTTPError as e:  # timeouts, refused or dropped connections
                problem = f"{type(e).__name__}: {e}"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"HTTP {response.status_code}"
                continue
            return response
        raise NoAnswerError(f"no answer after {self.retries + 1} sends: {problem}")

    @contextmanager
    def least_busy(self) -> Iterator[httpx.Client]:
        with self.lock:
            index = self.in_flight.index(min(self.in_flight))
            self.in_flight[index] += 1
        try:
            yield self.clients[index]
        finally:
            with self.lock:
                self.in_flight[index] -= 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`fn` over `items` with at most `concurrency` requests in flight, in order."""
        return self.pool.map(fn, items)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for client in self.clients:
            client.close()


def answer_content(response: httpx.Response) -> str:
    """The first choice's message text; otherwise the body itself, kept as the raw answer."""
    if response.status_code != 200:
        return f"<HTTP {response.status_code}: {response.text[:500]}>"
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:2000]
    return content if isinstance(content, str) else str(content)


def with_image_urls(messages: list[dict[str, Any]], urls: list[str]) -> list[dict[str, Any]]:
    """The prompt's messages with each `{"type": "image"}` placeholder filled, in order, by
    an `image_url` part (the chat-completions way of sending an image)."""
    images = iter(urls)
    filled = []
    for message in messages:
        content = [
            {"type": "image_url", "image_url": {"url": next(images)}}
            if part["type"] == "image"
            else part
            for part in message["content"]
        ]
        filled.append({**message, "content": content})
    return filled


def data_url(image: Image.Image, max_pixels: int, image_format: str = "JPEG") -> str:
    """A data URL of `image` (JPEG, or lossless PNG), downscaled to at most `max_pixels`."""
    area = image.width * image.height
    if area > max_pixels:
        factor = math.sqrt(max_pixels / area)
        size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, image_format)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format.lower()};base64,{encoded}"
