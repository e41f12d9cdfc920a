"""Request deadlines (`serve.request_timeout_s`): a search past its deadline stops, cooperatively.

The service answers 504 at the deadline itself (`app.search` stops waiting for the thread
that computes the answer). That thread cannot be killed; it stops at its next checkpoint:
waiting for the retrieval stages' lock (`DeadlineLock`, which stage 2's work beyond the
query waits on too) and each call into the agent (`DeadlineScorer`). The deadline rides in
a context variable, which the thread inherits from the request that started it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from mars_core.agent.types import Scorer

_DEADLINE: ContextVar[float | None] = ContextVar("mars_request_deadline", default=None)
# The calls into the agent that check the deadline first (the batched ones where they exist).
AGENT_CALLS = frozenset({"score", "generate", "score_many", "generate_many"})


class DeadlineExceeded(Exception):
    """A search ran past `serve.request_timeout_s` (HTTP 504)."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        limit = f"{seconds:g} s " if seconds else ""
        super().__init__(
            f"the search did not finish within its {limit}deadline (serve.request_timeout_s) "
            "and was stopped; try again, or with a smaller funnel.k3"
        )


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Searches started inside (and the threads they start) stop `seconds` from now; 0 = never."""
    token = _DEADLINE.set(time.monotonic() + seconds if seconds > 0 else None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left to the current request's deadline (None: no deadline)."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


def check_deadline() -> None:
    """A checkpoint: raise `DeadlineExceeded` once the current request's deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded()


class DeadlineLock:
    """The retrieval stages' lock (they are not thread-safe): a request waits for it no longer
    than its deadline, and checks the deadline again once it holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> DeadlineLock:
        check_deadline()
        left = remaining()
        if not self._lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
            raise DeadlineExceeded()
        try:
            check_deadline()
        except DeadlineExceeded:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class DeadlineScorer:
    """The agent's scorer as a request with a deadline calls it: every scoring or generating
    call checks the deadline first; everything else is the wrapped scorer's."""

    def __init__(self, runner: Scorer, *, owned: bool) -> None:
        self.runner = runner
        self.owned = owned  # a batcher of its own (closed with this), not the stage's scorer

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.runner, name)
        if name not in AGENT_CALLS:
            return attribute

        def checked(*args: Any, **kwargs: Any) -> Any:
            check_deadline()
            return attribute(*args, **kwargs)

        return checked

    def close(self) -> None:
        if self.owned:
            self.runner.close()
