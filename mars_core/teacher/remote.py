"""The server teacher: any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp),
or several replicas of one (`teacher.server.endpoint` + `teacher.server.replicas`).

Images travel as base64 JPEG data URLs, downscaled to `teacher.max_pixels` first (the server
would do it anyway; sending less is faster). The HTTP side is `mars_core.infra.http_client`: each
request to the least busy server, at most `teacher.server.concurrency` in flight on any one,
each waiting `teacher.server.timeout` seconds, a timeout, a dropped connection, a 429 or a 5xx
re-sent up to `teacher.server.retries` times after `teacher.server.backoff` seconds doubled
each time. What still has no answer becomes the raw text of the attempt (`<no answer: ...>`),
which the shared retry policy treats like any malformed answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mars_core.config import TeacherConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.http_client import (
    ChatClient,
    NoAnswerError,
    answer_content,
    data_url,
    with_image_urls,
)
from mars_core.prompt import product_text, prompt_messages
from mars_core.teacher.base import Label, LabelRequest, Teacher, label_with_retries
from mars_core.teacher.pair_images import pair_images, unloadable


class OpenAITeacher(Teacher):
    """Asks `teacher.pretrained` (the served model's name) at `teacher.server.endpoint`
    and the `teacher.server.replicas`."""

    def __init__(self, cfg: TeacherConfig, max_image_pixels: int) -> None:
        self.cfg = cfg
        self.max_image_pixels = max_image_pixels
        self.name = cfg.name
        self.client = ChatClient.for_servers(cfg.server, thread_name="teacher")

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
            return list(self.client.map(lambda i: self.complete(asked[i][1], attempt), indices))

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
        messages = prompt_messages(request.pair["query"], product_text(request.product))
        return with_image_urls(messages, [urls[path] for path in paths])

    def complete(self, messages: list[dict[str, Any]], attempt: int) -> str:
        """The answer text of one chat completion, re-sent on transient failures."""
        body = {
            "model": self.cfg.pretrained,
            "messages": messages,
            "max_tokens": self.cfg.max_new_tokens,
            "temperature": 0.0 if attempt == 1 else self.cfg.retry_temperature,
        }
        try:
            return answer_content(self.client.post(body))
        except NoAnswerError as e:
            return f"<{e}>"

    def close(self) -> None:
        self.client.close()
