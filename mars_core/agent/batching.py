"""Batching across users: concurrent queries' candidates share the agent's forward passes.

A service answering many users at once would otherwise run the agent once per request,
each with a batch of one query's candidates. `AgentBatcher` gives the scorer to one worker
thread; request threads hand it their (room, query, products) and wait. The worker takes
the first waiting job, collects others for up to `window_s` (or until a full batch of
`scorer.batch_size` candidates is there) and runs them together through `score_many` /
`generate_many`, which merge candidates of different rooms into shared batches. The scorer
is only ever used from that thread, so the model needs no lock.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from mars_core.agent.types import GeneratedAnswer, Job, ProductView


@dataclass
class _Job:
    kind: str  # "score" or "generate"
    room: Image.Image
    query: str
    products: Sequence[ProductView]
    max_new_tokens: int = 0
    scores: Sequence[float] | None = None  # "generate": known scores open the answers
    future: Future = field(default_factory=Future)


class MergingScorer(Protocol):
    """What the batcher runs: a scorer that merges several queries' candidates into shared
    batches (`scorer.AgentScorer`)."""

    batch_size: int
    max_new_tokens: int
    adapter: str | None

    def score_many(self, jobs: Sequence[Job]) -> list[list[float]]: ...

    def generate_many(
        self,
        jobs: Sequence[Job],
        max_new_tokens: int,
        min_new_tokens: int = 0,
        scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[list[GeneratedAnswer]]: ...


class AgentBatcher:
    """The scorer behind a queue: `score` / `generate` as on `AgentScorer`, merged across
    the threads that call them at about the same time (a `types.Scorer`)."""

    def __init__(self, scorer: MergingScorer, window_s: float) -> None:
        self.scorer = scorer
        self.batch_size = scorer.batch_size
        self.window_s = window_s
        self.largest_merge = 0  # most queries run together so far (for /health and tests)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="agent-batcher", daemon=True)
        self._thread.start()

    def score(self, room: Image.Image, query: str, products: Sequence[ProductView]) -> list[float]:
        """Fast scores of one query's products, computed in a batch shared with others."""
        return self._submit(_Job("score", room, query, products))

    def generate(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        scores: Sequence[float] | None = None,
        max_new_tokens: int | None = None,
    ) -> list[GeneratedAnswer]:
        """Greedy answers for one query's products, decoded in a batch shared with others
        (`scores` as on `AgentScorer.generate`)."""
        budget = max_new_tokens or self.scorer.max_new_tokens
        return self._submit(_Job("generate", room, query, products, budget, scores))

    @property
    def adapter(self) -> str | None:
        return self.scorer.adapter

    def for_concurrent_requests(self, window_s: float) -> AgentBatcher:
        """Already merging concurrent requests: itself."""
        return self

    def close(self) -> None:
        """Stop the worker once the jobs already queued are done."""
        self._queue.put(None)
        self._thread.join()

    def _submit(self, job: _Job):
        if not self._thread.is_alive():
            raise RuntimeError("the agent batcher is closed")
        self._queue.put(job)
        return job.future.result()

    def _serve(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs, closing = self._collect(first)
            self._run([job for job in jobs if job.kind == "score"])
            generating = [job for job in jobs if job.kind == "generate"]
            for budget in sorted({job.max_new_tokens for job in generating}):
                self._run([job for job in generating if job.max_new_tokens == budget])
            if closing:
                return

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and whatever arrives within the window, until a batch is full."""
        jobs = [first]
        deadline = time.monotonic() + self.window_s
        while sum(len(job.products) for job in jobs) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        queries = [(job.room, job.query, job.products) for job in jobs]
        try:
            if jobs[0].kind == "score":
                results = self.scorer.score_many(queries)
            else:
                known = [job.scores for job in jobs]
                results = self.scorer.generate_many(queries, jobs[0].max_new_tokens, scores=known)
        except Exception as error:
            for job in jobs:
                job.future.set_exception(error)
            return
        self.largest_merge = max(self.largest_merge, len(jobs))
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
