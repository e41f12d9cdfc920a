"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with ways to misbehave.

It answers `POST /v1/chat/completions` like vLLM does. The answer is deterministic (derived
from the request's text), so two runs over the same pairs get the same labels. `mode` picks
the behaviour of every request: `ok`, `garbage` (a 200 whose content is no answer),
`not_json` (a 200 whose body is not JSON), `slow` (answers after `slow_s`, past a client's
timeout), `drop` (closes the connection without a response) or `flaky` (the first
`failures` requests get 503, then ok).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from local_server import LocalServer


class ChatServer(LocalServer):
    def __init__(self, mode: str = "ok", *, delay_s: float = 0.0, slow_s: float = 2.0) -> None:
        self.mode = mode
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
                try:
                    self._answer()
                finally:
                    with state.lock:
                        state.in_flight -= 1

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
                content = answer(body) if state.mode != "garbage" else "lorem ipsum {{ score"
                reply = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                }
                return self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
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
