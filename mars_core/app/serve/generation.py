"""What one request answers from: a `Generation` of an opened index build and a student.

A `Generation` is one consistent view: an opened index build (its retrieval stages, its
products' images, a reader lease that keeps `prune_lucene` off its folder), the sample rooms
and the student. The parts are shared: a re-index opens a new `IndexPart` beside the same
`StudentPart`, a promotion a new `StudentPart` beside the same `IndexPart`, and a part closes
when the last generation holding it does (`mars_core.app.serve.follow`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from mars_core.agent.stage import AgentStage
from mars_core.app.serve.deadline import DeadlineLock
from mars_core.catalogue.schema import ROOMS_FILE
from mars_core.config import MarsConfig
from mars_core.index.store import IndexSnapshot, ReaderLease
from mars_core.search.funnel import FunnelStep, SearchFunnel
from mars_core.search.types import (
    Candidate,
    SearchRequest,
    StageOutput,
    WrappedStage,
    close_stage,
)


@dataclass
class LockedStage(WrappedStage):
    """A stage whose `rank` runs under a lock shared by the service's requests."""

    lock: DeadlineLock

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        with self.lock:
            return self.stage.rank(request, candidates, k)


@dataclass(eq=False)
class IndexPart:
    """One published build, opened: a step per registered stage (the agent's left empty),
    its products' images by key, and the lease that keeps its folder."""

    snapshot: IndexSnapshot
    steps: list[FunnelStep]
    images: dict[str, Path]
    lease: ReaderLease
    users: int = 0  # generations holding it, counted under the follower's lock

    def close(self) -> None:
        for step in self.steps:
            close_stage(step.stage)
        self.lease.release()


@dataclass(eq=False)
class StudentPart:
    """The agent stage of one student version (None when the funnel runs without the agent)."""

    stage: AgentStage | None
    name: str
    version: int | None  # the registry version a followed champion is pinned to
    notice: str | None
    users: int = 0

    def describe(self) -> str:
        """The student as results name it (`ranked_by`)."""
        return self.stage.student if self.stage is not None else f"{self.name} (agent off)"

    def close(self) -> None:
        close_stage(self.stage)


@dataclass(eq=False)
class Generation:
    """What one request answers from."""

    index: IndexPart
    student: StudentPart
    rooms: dict[str, dict[str, Any]]
    funnel: SearchFunnel
    requests: int = 0  # requests (and their computations) holding it
    retired: bool = False  # no longer current: closes when its last request ends
    closed: bool = False

    def identity(self) -> dict[str, Any]:
        """What answered: the index build, the catalogue's size, the student and version."""
        return {
            "index_build": self.index.snapshot.manifest.lucene,
            "products": self.index.snapshot.manifest.rows,
            "student": {
                "name": self.student.name,
                "version": self.student.version,
                "ranked_by": self.student.describe(),
            },
        }


def close_parts(parts: list[IndexPart | StudentPart]) -> None:
    """Close retired parts, then give the memory they freed back to the system."""
    for part in parts:
        part.close()
    if parts:
        release_freed_memory()


def release_freed_memory() -> None:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`; elsewhere nothing).

    Opening a build and loading a student allocate from the C heap in many threads' arenas;
    closing the old ones frees the memory, but glibc keeps it mapped. Measured with the tiny
    models under 20 searches in flight, every re-index left 10-20 MiB of such free heap in the
    service's resident memory, for good (bench/RESULTS.md, the service soak).
    """
    trim = malloc_trim()
    if trim is not None:
        trim(0)


@cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, found once (None where the C library has none)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def read_rooms(cfg: MarsConfig) -> dict[str, dict[str, Any]]:
    """The sample rooms the page offers (the first `serve.sample_rooms` of rooms.parquet)."""
    rooms_file = Path(cfg.data.out_dir) / ROOMS_FILE
    if not rooms_file.is_file():
        return {}
    rows = pq.read_table(rooms_file, columns=["room_id", "room_type", "path"]).to_pylist()
    return {row["room_id"]: row for row in rows[: cfg.serve.sample_rooms]}
