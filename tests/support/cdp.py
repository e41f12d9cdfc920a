"""Headless Chromium driven over the Chrome DevTools Protocol (Debian's `chromium` package).

Playwright's browser download needs the internet; this drives the system's chromium
directly: it starts with `--remote-debugging-port=0` and a profile under the test's tmp dir,
writes the port it picked to `DevToolsActivePort`, and takes commands over one websocket
(`websockets`' sync client). `Page` holds one tab (a flattened CDP session) and the few
commands the browser test needs; page errors (uncaught exceptions) are collected.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

BROWSERS = ("chromium", "chromium-browser")
START_TIMEOUT_S = 60.0
BROWSER_IDS = itertools.count(1_000_000)  # browser-level commands, apart from a page's ids
COMMAND_TIMEOUT_S = 60.0
POLL_S = 0.2


def find_chromium() -> str | None:
    """The system's chromium executable, if one is installed."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class Page:
    """One browser tab, commanded over the browser's DevTools websocket."""

    def __init__(self, socket: ClientConnection, session: str) -> None:
        self.socket = socket
        self.session = session
        self.ids = itertools.count(1)
        self.errors: list[str] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command to the tab and return its result (events are read on the way)."""
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params, "sessionId": self.session}
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=COMMAND_TIMEOUT_S))
            if reply.get("method") == "Runtime.exceptionThrown":
                self.errors.append(reply["params"]["exceptionDetails"].get("text", "?"))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s} s: {expression}")
            time.sleep(POLL_S)
        return value

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in an `<input type=file>` as a user would (fires its change event)."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, beyond the viewport."""
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextmanager
def headless_page(executable: str, profile: Path, url: str) -> Iterator[Page]:
    """Chromium, headless with its profile in `profile`, showing `url` in one tab."""
    profile.mkdir(parents=True, exist_ok=True)
    command = [
        executable,
        "--headless",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--remote-allow-origins=*",
        "--window-size=1280,1600",
        "about:blank",
    ]
    log = (profile / "chromium.log").open("wb")
    browser = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with connect(_browser_socket(profile, browser), max_size=None) as socket:
            target = _command(socket, "Target.createTarget", url="about:blank")["targetId"]
            session = _command(socket, "Target.attachToTarget", targetId=target, flatten=True)
            page = Page(socket, session["sessionId"])
            for domain in ("Page", "Runtime", "DOM"):
                page.send(f"{domain}.enable")
            page.send("Page.navigate", url=url)
            page.wait_for("document.readyState === 'complete'", START_TIMEOUT_S)
            yield page
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        log.close()


def _browser_socket(profile: Path, browser: subprocess.Popen) -> str:
    """The browser's DevTools websocket URL, from the port file chromium writes at start."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_file.is_file() or len(port_file.read_text().split()) < 2:
        if browser.poll() is not None:
            log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chromium exited with {browser.returncode}: {log}")
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(POLL_S)
    port, path = port_file.read_text().split()[:2]
    return f"ws://127.0.0.1:{port}{path}"


def _command(socket: ClientConnection, method: str, **params: Any) -> dict[str, Any]:
    """A browser-level command (no session), skipping events until its answer."""
    message_id = next(BROWSER_IDS)
    socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
    while True:
        reply = json.loads(socket.recv(timeout=COMMAND_TIMEOUT_S))
        if reply.get("id") == message_id:
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]
