"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with ways to misbehave.

It answers `POST /v1/chat/completions` like vLLM does. Without a model the answer is
deterministic (derived from the request's text), so two runs over the same pairs get the same
labels. With `model=ServedModel(model, processor)` (a real tiny Qwen2-VL in this process) it
answers as vLLM serving that model: greedy completions, of a new assistant message or of the
final one (`continue_final_message`, `add_generation_prompt=false`), and for such a request
with `logprobs`, the `top_logprobs` of the next token from one forward pass. `mode` picks the
behaviour of every request: `ok`, `garbage` (a 200 whose content is no answer),
`not_json` (a 200 whose body is not JSON), `slow` (answers after `slow_s`, past a client's
timeout), `drop` (closes the connection without a response) or `flaky` (the first
`failures` requests get 503, then ok).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import torch
from PIL import Image

from support.local_server import LocalServer


class ChatServer(LocalServer):
    def __init__(
        self,
        mode: str = "ok",
        *,
        delay_s: float = 0.0,
        slow_s: float = 2.0,
        model: ServedModel | None = None,
    ) -> None:
        self.mode = mode
        self.model = model
        self.delay_s = delay_s  # added to every request (to have a run to kill)
        self.slow_s = slow_s
        self.failures = 0
        self.requests: list[dict] = []
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        self.lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return self.address("/v1")

    def _handler(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                with state.lock:
                    state.in_flight += 1
                    state.most_in_flight = max(state.most_in_flight, state.in_flight)
                self.answering = True
                try:
                    self._answer()
                finally:
                    self._done()

            def _done(self) -> None:
                """Stops counting this request as in flight, once. `_send` calls it before
                the body goes out: a client that has the whole answer may send its next
                request before this thread would reach `finally`."""
                with state.lock:
                    if self.answering:
                        state.in_flight -= 1
                        self.answering = False

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with state.lock:
                    state.requests.append(body)
                    flaky = state.mode == "flaky" and state.failures > 0
                    if flaky:
                        state.failures -= 1
                time.sleep(state.delay_s)
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                if state.mode == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return None
                if state.mode == "slow":
                    time.sleep(state.slow_s)
                if flaky:
                    return self._send(503, b'{"error": "overloaded"}')
                if state.mode == "not_json":
                    return self._send(200, b"<html>502 Bad Gateway</html>")
                if state.mode == "garbage":
                    choice = {"message": {"role": "assistant", "content": "lorem ipsum {{ score"}}
                elif state.model is not None:
                    choice = state.model.choice(body)
                else:
                    choice = {"message": {"role": "assistant", "content": answer(body)}}
                reply = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", **choice}],
                }
                return self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self._done()
                self.wfile.write(data)

        return Handler


def answer(body: dict) -> str:
    """A chat model's answer: fenced JSON with a score derived from the request text, after
    checking the request carries two decodable JPEG data URLs (room, then product)."""
    user = body["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in user if part["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    assert all(base64.b64decode(u.split(",", 1)[1])[:2] == b"\xff\xd8" for u in urls)
    text = next(part["text"] for part in user if part["type"] == "text")
    tenths = hashlib.sha256(text.encode()).digest()[0] % 11
    return f'Sure.\n```json\n{{"score": "{tenths}/10", "rationale": "Judged from the text."}}\n```'


class ServedModel:
    """A Qwen2-VL model and processor answering chat requests as vLLM would (one at a time)."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor
        self.lock = threading.Lock()

    def choice(self, body: dict) -> dict:
        """The first choice of the reply: next-token `top_logprobs` or a greedy completion."""
        messages, images = self.inputs(body["messages"])
        with self.lock, torch.inference_mode():
            if not body.get("continue_final_message"):
                return self.complete(messages, images, body, add_generation_prompt=True)
            assert body.get("add_generation_prompt") is False
            assert messages[-1]["role"] == "assistant"
            if body.get("logprobs"):
                return self.next_token(messages, images, int(body["top_logprobs"]))
            return self.complete(messages, images, body, add_generation_prompt=False)

    def inputs(self, chat: list[dict]) -> tuple[list[dict], list[Image.Image]]:
        """Messages with `{"type": "image"}` placeholders and the decoded data-URL images."""
        messages, images = [], []
        for message in chat:
            content = message["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part["type"] == "image_url":
                        data = part["image_url"]["url"].split(",", 1)[1]
                        images.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
                        parts.append({"type": "image"})
                    else:
                        parts.append(part)
                content = parts
            messages.append({"role": message["role"], "content": content})
        return messages, images

    def next_token(self, messages: list[dict], images: list[Image.Image], k: int) -> dict:
        text = self.processor.apply_chat_template(
            messages, continue_final_message=True, add_generation_prompt=False
        )
        logits = self.forward(text, images)
        logprobs = logits.float().log_softmax(-1)
        top = logprobs.topk(min(k, logprobs.numel()))
        tokenizer = self.processor.tokenizer
        alternatives = [
            {"token": tokenizer.decode([index]), "logprob": value}
            for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]
        chosen = alternatives[0]
        return {
            "message": {"role": "assistant", "content": chosen["token"]},
            "logprobs": {"content": [{**chosen, "top_logprobs": alternatives}]},
        }

    def forward(self, text: str, images: list[Image.Image]) -> Any:
        """The next-token logits after `text` (one sequence, no padding)."""
        inputs = self.processor(text=[text], images=[images], return_tensors="pt")
        device = next(self.model.parameters()).device
        out = self.model(**dict(inputs.to(device)), use_cache=False, logits_to_keep=1)
        return out.logits[0, -1]

    def complete(
        self,
        messages: list[dict],
        images: list[Image.Image],
        body: dict,
        *,
        add_generation_prompt: bool,
    ) -> dict:
        """A greedy completion: of a new assistant message, or (vLLM's
        `continue_final_message`) of the final one, whose text the content then lacks."""
        text = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )
        inputs = self.processor(text=[text], images=[images], return_tensors="pt")
        out = self.model.generate(
            **dict(inputs.to(next(self.model.parameters()).device)),
            do_sample=False,
            max_new_tokens=body["max_tokens"],
            min_new_tokens=body.get("min_tokens", 0),
        )
        new = out[:, inputs["input_ids"].shape[1] :]
        content = self.processor.batch_decode(new, skip_special_tokens=True)[0]
        return {"message": {"role": "assistant", "content": content}}
