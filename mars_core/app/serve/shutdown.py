"""Graceful shutdown: on SIGTERM, refuse new requests, let those in flight finish, then exit.

`Gate` is the app's outermost layer: it counts the requests in flight, refuses new ones with
503 and `Retry-After` (`serve.retry_after_s`) once the service drains, and records every
answer's route, status and time in the metrics. `DrainingServer` is uvicorn's server with
SIGTERM handled so: the first starts the drain, and the server exits once no request is in
flight, or when `serve.drain_s` has passed; a second SIGTERM exits at once. A drain that
finished exits 0; one cut short (by the time limit or a second SIGTERM) sets `cut`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from types import FrameType

import uvicorn
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mars_core.app.serve.api import INTERNAL_ERROR, SERVICE_UNAVAILABLE, send_error
from mars_core.app.serve.metrics import ServiceMetrics

UNROUTED = "unrouted"  # the route label of a path no route matches


class Drain:
    """Requests in flight, and whether new ones are let in. Used on the event loop only."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        self._idle: asyncio.Event | None = None

    def admit(self) -> bool:
        if self.draining:
            return False
        self.in_flight += 1
        return True

    def done(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Let no new request in, then wait up to `timeout` s for those in flight; True when
        none is left."""
        self.draining = True
        if self.in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class Gate:
    """ASGI middleware: admission while draining, and each answer into the metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        drain: Drain,
        metrics: ServiceMetrics,
        routes: Sequence[BaseRoute],
        retry_after_s: int,
    ) -> None:
        self.app = app
        self.drain = drain
        self.metrics = metrics
        self.routes = routes
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = INTERNAL_ERROR  # unless a response starts

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.drain.admit():
                try:
                    await self.app(scope, receive, recorded)
                finally:
                    self.drain.done()
            else:
                await self._refuse(recorded)
        finally:
            self.metrics.answered(self._route(scope), status, time.perf_counter() - started)

    async def _refuse(self, send: Send) -> None:
        message = (
            "the service is shutting down and takes no new requests; "
            f"try again in {self.retry_after_s} s"
        )
        headers = {"Retry-After": str(self.retry_after_s)}
        await send_error(send, SERVICE_UNAVAILABLE, message, headers)

    def _route(self, scope: Scope) -> str:
        """The template of the route the path matches (bounded label values), or UNROUTED."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return getattr(route, "path", UNROUTED)
        return UNROUTED


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with SIGTERM starting a drain of at most `drain_s` seconds."""

    def __init__(self, config: uvicorn.Config, *, drain: Drain, drain_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_s = drain_s
        self.cut = False  # the drain ended with requests still in flight
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: the first drains, a second exits at once. Other signals: uvicorn's way."""
        if sig != signal.SIGTERM or self._loop is None:
            return super().handle_exit(sig, frame)
        if self.drain.draining:
            self.cut = True
            self.force_exit = self.should_exit = True
            return
        self.drain.draining = True
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        if not await self.drain.drained(self.drain_s):
            self.cut = self.force_exit = True
        self.should_exit = True
