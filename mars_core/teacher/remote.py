"""The server teacher: any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp),
or several replicas of one (`teacher.endpoint` + `teacher.replicas`).

Images travel as base64 JPEG data URLs, downscaled to `teacher.max_pixels` first (the server
would do it anyway; sending less is faster). Each request goes to the least busy server, with
at most `teacher.concurrency` in flight on any one; each waits `teacher.timeout` seconds. A
timeout, a dropped connection, a 429 or a 5xx is re-sent up to `teacher.retries` times,
waiting `teacher.backoff` seconds doubled each time; what still has no answer becomes the raw
text of the attempt (`<no answer: ...>`), which the shared retry policy treats like any
malformed answer.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
from PIL import Image

from mars_core.agent.prompt import product_text, prompt_messages
from mars_core.config import TeacherConfig
from mars_core.errors import UserInputError
from mars_core.teacher.base import Label, LabelRequest, Teacher, label_with_retries
from mars_core.teacher.pair_images import pair_images, unloadable

JPEG_QUALITY = 90
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Servers:
    """One HTTP client per server and how many requests each has in flight.

    The thread pool has `concurrency` workers per server and a worker takes the least busy
    server, so no server ever has more than `concurrency` requests in flight.
    """

    def __init__(self, urls: list[str], cfg: TeacherConfig, headers: dict[str, str]) -> None:
        self.clients = [
            httpx.Client(
                base_url=url.rstrip("/") + "/",
                timeout=cfg.timeout,
                headers=headers,
                limits=httpx.Limits(max_connections=cfg.concurrency),
            )
            for url in urls
        ]
        self.in_flight = [0] * len(urls)
        self.lock = threading.Lock()

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

    def close(self) -> None:
        for client in self.clients:
            client.close()


class OpenAITeacher(Teacher):
    """Asks `teacher.pretrained` (the served model's name) at `teacher.endpoint` and the
    `teacher.replicas`."""

    def __init__(self, cfg: TeacherConfig, max_image_pixels: int) -> None:
        self.cfg = cfg
        self.max_image_pixels = max_image_pixels
        self.name = cfg.name
        headers = {}
        if cfg.api_key_env and os.environ.get(cfg.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[cfg.api_key_env]}"
        self.servers = Servers([str(cfg.endpoint), *cfg.replicas], cfg, headers)
        self.pool = ThreadPoolExecutor(
            max_workers=cfg.concurrency * len(self.servers.clients), thread_name_prefix="teacher"
        )

    def label(self, requests: Sequence[LabelRequest]) -> list[Label]:
        labels: list[Label | None] = [None] * len(requests)
        asked: list[tuple[int, list[dict[str, Any]]]] = []
        urls: dict[str, str] = {}  # image path -> data URL (a room serves many pairs)
        for index, request in enumerate(requests):
            try:
                messages = self.messages(request, urls)
            except UserInputError as e:
                labels[index] = Label(None, None, unloadable(e), "failed", 0)
                continue
            asked.append((index, messages))

        def ask(indices: list[int], attempt: int) -> list[str]:
            return list(self.pool.map(lambda i: self.complete(asked[i][1], attempt), indices))

        answers = label_with_retries(len(asked), ask, self.cfg.max_attempts)
        for (index, _), label in zip(asked, answers, strict=True):
            labels[index] = label
        return [label for label in labels if label is not None]

    def messages(self, request: LabelRequest, urls: dict[str, str]) -> list[dict[str, Any]]:
        """The one prompt's messages with its image placeholders filled by data URLs."""
        paths = [request.room_path, request.product["image_path"]]
        if any(path not in urls for path in paths):
            images = pair_images(request, self.max_image_pixels)
            for path, image in zip(paths, images, strict=True):
                urls.setdefault(path, data_url(image, self.cfg.max_pixels))
        images = iter([urls[path] for path in paths])
        messages = prompt_messages(request.pair["query"], product_text(request.product))
        for message in messages:
            message["content"] = [
                {"type": "image_url", "image_url": {"url": next(images)}}
                if part["type"] == "image"
                else part
                for part in message["content"]
            ]
        return messages

    def complete(self, messages: list[dict[str, Any]], attempt: int) -> str:
        """The answer text of one chat completion, re-sent on transient failures."""
        body = {
            "model": self.cfg.pretrained,
            "messages": messages,
            "max_tokens": self.cfg.max_new_tokens,
            "temperature": 0.0 if attempt == 1 else self.cfg.retry_temperature,
        }
        problem = ""
        for send in range(self.cfg.retries + 1):
            if send:
                time.sleep(self.cfg.backoff * 2 ** (send - 1))
            try:
                with self.servers.least_busy() as client:
                    response = client.post("chat/completions", json=body)
            except httpx.HTTPError as e:  # timeouts, refused or dropped connections
                problem = f"{type(e).__name__}: {e}"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"HTTP {response.status_code}"
                continue
            return answer_content(response)
        return f"<no answer after {self.cfg.retries + 1} sends: {problem}>"

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.servers.close()


def answer_content(response: httpx.Response) -> str:
    """The first choice's message text; otherwise the body itself, kept as the raw answer."""
    if response.status_code != 200:
        return f"<HTTP {response.status_code}: {response.text[:500]}>"
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:2000]
    return content if isinstance(content, str) else str(content)


def data_url(image: Image.Image, max_pixels: int) -> str:
    """A JPEG data URL of `image`, downscaled to at most `max_pixels` pixels."""
    area = image.width * image.height
    if area > max_pixels:
        factor = math.sqrt(max_pixels / area)
        size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
