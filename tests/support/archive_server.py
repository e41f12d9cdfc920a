"""A real HTTP server on 127.0.0.1 serving archives, with Range support that can be switched
off and a way to cut the next transfer short (to test resumed downloads)."""

from __future__ import annotations

import tarfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from support.local_server import LocalServer


class ArchiveServer(LocalServer):
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.honour_range = True
        self.cut_next: int | None = None  # send only this many body bytes on the next GET
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return self.address("/archives")

    def gets(self) -> list[tuple[str, str | None]]:
        return [(path, ranged) for method, path, ranged in self.requests if method == "GET"]

    def _handler(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.serve(body=False)

            def do_GET(self) -> None:
                self.serve(body=True)

            def serve(self, body: bool) -> None:
                wanted = self.headers.get("Range")
                state.requests.append((self.command, self.path, wanted))
                data = state.files.get(self.path.removeprefix("/archives/"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if wanted and state.honour_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                payload = data[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    if state.cut_next is not None:
                        payload, state.cut_next = payload[: state.cut_next], None
                    self.wfile.write(payload)

        return Handler


def tar_folder(root: Path, top: str, archive: Path) -> bytes:
    """Tar `root/top` as `top/...` (how the ABO archives are laid out); the archive's bytes."""
    with tarfile.open(archive, "w") as tar:
        tar.add(root / top, arcname=top)
    return archive.read_bytes()
