"""The served agent: the student behind an OpenAI-compatible server (vLLM), for scale-out.

`student.kind=openai` scores through `student.server.endpoint` instead of loading the model here.
The same prompt (`mars_core.prompt`) travels as chat messages with the room and product
images as lossless PNG data URLs, product images already within `student.product_max_pixels`
on the vision grid, so the server's processor sees the pixels the in-process agent sees. The
fast score needs the next-token distribution at two places of the forced answer
`{"score": 0.`: each is one request whose last message is that opening as an assistant
message the server continues (vLLM: `continue_final_message=true`,
`add_generation_prompt=false`), asking one token with `logprobs` and `top_logprobs`:

* opening `{"score": ` → the first digit's log-probabilities of `0` and `1`;
* opening `{"score": 0.` → the tenths' log-probabilities of `0`..`9`.

`mars_core.agent.expected_score.expected_scores` turns them into the score, exactly as the
in-process scorer does with its logits (a digit outside the returned alternatives counts as
probability 0). Every request of one query starts with the same system text and room image,
so a server with prefix caching (`vllm serve --enable-prefix-caching`) computes the room once.
Rationales for the top N are greedy continuations of their answers opened with the known
scores. At most `student.server.concurrency` requests are in flight on each of the student's
servers (`student.server.endpoint` + `replicas`); transient failures are re-sent
(`mars_core.infra.http_client`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mars_core.agent.expected_score import DIGITS, expected_scores
from mars_core.agent.types import SCORE_PROBE, GeneratedAnswer, ProductView
from mars_core.agent.vision import VISION_GRID, bound_image
from mars_core.config import StudentConfig
from mars_core.infra.errors import ModelServerError
from mars_core.infra.http_client import ChatClient, NoAnswerError, data_url, with_image_urls
from mars_core.prompt import (
    ANSWER_PREFIX,
    answer_openings,
    prompt_messages,
    try_parse_answer,
)

IMAGE_FORMAT = "PNG"  # lossless: the server must see the pixels the in-process agent sees
DIGIT_TOKENS = [str(digit) for digit in range(DIGITS)]


class RemoteAgentScorer:
    """Scores and explains (room, query, product) triples through a served student."""

    def __init__(self, cfg: StudentConfig) -> None:
        self.cfg = cfg
        self.endpoint = str(cfg.server.endpoint)
        # What ranks results, as pages and tables say it (`describe_registered` quotes it).
        self.adapter = f"{cfg.served_model} served at {self.endpoint}"
        self.client = ChatClient.for_servers(cfg.server, thread_name="agent")

    def score(self, room: Image.Image, query: str, products: Sequence[ProductView]) -> list[float]:
        """Fast scores in [0, 1], one per product (the server's prefix cache shares the room)."""
        if not products:
            return []
        prompts = self._prompts(room, query, products)
        openings = [(p, opening) for p in prompts for opening in (ANSWER_PREFIX, SCORE_PROBE)]
        rows = list(self.client.map(lambda item: self._next_digits(*item), openings))
        first = torch.tensor([row[:2] for row in rows[0::2]])
        tenths = torch.tensor(rows[1::2])
        return expected_scores(first, tenths).tolist()

    def generate(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        scores: Sequence[float] | None = None,
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
    ) -> list[GeneratedAnswer]:
        """Greedy answer JSON per product (the rationales of the top N). With `scores`, each
        answer's opening (`answer_opening`) goes as the assistant message the server
        continues, so it writes only the rationale, as the in-process agent does."""
        prompts = self._prompts(room, query, products)
        openings = answer_openings(scores, len(products))
        bounds = {"max_tokens": max_new_tokens or self.cfg.max_new_tokens, "temperature": 0.0}
        if min_new_tokens:
            bounds["min_tokens"] = min_new_tokens  # vLLM's extra sampling parameter
        texts = self.client.map(
            lambda item: item[1] + self._content(*item, bounds), zip(prompts, openings, strict=True)
        )
        return [GeneratedAnswer(text=text, answer=try_parse_answer(text)) for text in texts]

    def for_concurrent_requests(self, window_s: float) -> RemoteAgentScorer:
        """Itself: its server batches concurrent requests."""
        return self

    def close(self) -> None:
        self.client.close()

    def _prompts(
        self, room: Image.Image, query: str, products: Sequence[ProductView]
    ) -> list[list[dict[str, Any]]]:
        """The one prompt per product, images as data URLs (the room's encoded once)."""
        room_url = data_url(room, self.cfg.request_max_pixels, IMAGE_FORMAT)
        return [
            with_image_urls(
                prompt_messages(query, product.text),
                [
                    room_url,
                    data_url(
                        self._bounded(product.image), self.cfg.request_max_pixels, IMAGE_FORMAT
                    ),
                ],
            )
            for product in products
        ]

    def _bounded(self, image: Image.Image) -> Image.Image:
        """The product image as the in-process agent shows it (`student.product_max_pixels`):
        a served student gets the few visual tokens it was trained on, not a room's."""
        return bound_image(image, VISION_GRID, self.cfg.min_pixels, self.cfg.product_max_pixels)

    def _next_digits(self, messages: list[dict[str, Any]], opening: str) -> list[float]:
        """Log-probabilities of the digits `0`..`9` as the token after `opening` (`-inf` for a
        digit the server did not list among its `top_logprobs`)."""
        body = {
            "messages": [*messages, {"role": "assistant", "content": opening}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.cfg.top_logprobs,
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        reply = self._ask(body)
        try:
            listed = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            logprobs: dict[str, float] = {}
            for alternative in listed:
                logprobs.setdefault(alternative["token"], float(alternative["logprob"]))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise self._error(f"its answer has no top_logprobs ({type(e).__name__}: {e})") from e
        digits = [logprobs.get(token, float("-inf")) for token in DIGIT_TOKENS]
        wanted = digits[:2] if opening == ANSWER_PREFIX else digits
        if all(value == float("-inf") for value in wanted):
            raise self._error(
                f"none of the digits {DIGIT_TOKENS[: len(wanted)]} is among the "
                f"{self.cfg.top_logprobs} most likely tokens after {opening!r}: is "
                f"{self.cfg.served_model!r} the student, and does the server continue the "
                "final assistant message?"
            )
        return digits

    def _content(self, messages: list[dict[str, Any]], opening: str, bounds: dict[str, Any]) -> str:
        """The text of one completion: an ordinary one, or the continuation of `opening`."""
        body: dict[str, Any] = {"messages": messages, **bounds}
        if opening:
            body["messages"] = [*messages, {"role": "assistant", "content": opening}]
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        reply = self._ask(body)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise self._error(f"its answer has no message content ({e})") from e
        return content if isinstance(content, str) else str(content)

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to one chat completion for the served student."""
        try:
            response = self.client.post({"model": self.cfg.served_model, **body})
        except NoAnswerError as e:
            raise self._error(str(e)) from e
        if response.status_code != 200:
            raise self._error(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as e:
            raise self._error(f"its answer is not JSON: {response.text[:200]!r}") from e

    def _error(self, problem: str) -> ModelServerError:
        return ModelServerError(
            f"the student server at {self.endpoint} (student.server.endpoint) gave no usable "
            f"answer: {problem}"
        )
