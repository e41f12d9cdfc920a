"""How the service follows a re-index and a newly promoted champion.

A request holds the `Generation` (`mars_core.app.serve.generation`) that was current when it
arrived until its answer is written, and the thread computing it holds it until that thread
ends (a search cut by its deadline ends later), so every part of one answer comes from one
build and one student, and nothing it reads is closed under it.

Between requests, at most every `serve.reload_check_s`, a background check stats
`CURRENT.json` and, with `student.adapter=auto` and `serve.follow_champion`, asks the
registry which version the champion alias points at. What changed is opened beside the
running generation and swapped in for new requests; the old generation closes when its last
request finishes, and with it each part the new one does not share (a re-index keeps the
student loaded, a promotion keeps the index open, and the embedder is loaded once for every
build: `LoadedModels`); the C heap they freed goes back to the system. A build or a student
that fails to open leaves the old one serving, logs one line and is shown by `/health` under
`problems`; a champion version that failed is not tried again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mars_core.agent.adapter import NO_ADAPTER, SERVE_CHAMPION, champion_pin
from mars_core.app.serve.deadline import DeadlineExceeded, DeadlineLock, DeadlineScorer
from mars_core.app.serve.generation import (
    Generation,
    IndexPart,
    LockedStage,
    StudentPart,
    close_parts,
    read_rooms,
    release_freed_memory,
)
from mars_core.config import MarsConfig
from mars_core.funnel.stages import (
    AGENT,
    LoadedModels,
    agent_notice,
    build_funnel,
    funnel_of,
    known_stages,
    open_agent,
)
from mars_core.index.lucene import read_products
from mars_core.index.store import MANIFEST_FILE, IndexSnapshot, lease_build
from mars_core.infra.errors import one_line
from mars_core.search.funnel import FunnelStep

log = logging.getLogger(__name__)
OPEN_ATTEMPTS = 3  # builds published while one opens: open the newest instead, this many times


@dataclass
class Follower:
    """The current generation, and the checks that replace it."""

    cfg: MarsConfig
    lock: DeadlineLock = field(default_factory=DeadlineLock)  # the retrieval stages'
    problems: dict[str, str] = field(default_factory=dict)  # "index"/"student": last failure
    swaps: Counter[str] = field(default_factory=Counter)  # "index"/"student": swapped in
    failures: Counter[str] = field(default_factory=Counter)  # by part, as in `problems`
    models: LoadedModels = field(default_factory=LoadedModels)  # shared by every build
    _current: Generation | None = None
    _state: threading.Lock = field(default_factory=threading.Lock)
    _signature: tuple[int, int, int] | None = None
    _next_check: float = 0.0
    _wake: threading.Event = field(default_factory=threading.Event)
    _closing: bool = False
    _worker: threading.Thread | None = None
    _refused: set[int | None] = field(default_factory=set)  # champion versions that failed

    @property
    def root(self) -> Path:
        return Path(self.cfg.index.dir)

    @property
    def follows_champion(self) -> bool:
        student = self.cfg.student
        return (
            self.cfg.serve.follow_champion
            and student.kind == "local"
            and student.adapter == SERVE_CHAMPION
            and AGENT in self.cfg.funnel.stages
        )

    def open(self) -> None:
        """Open the published build and the configured student (once, at start-up)."""
        self._signature = manifest_signature(self.root)
        index = self._open_index()
        try:
            student = self._open_student(*self._pin())
        except BaseException:
            index.close()
            raise
        self._install(self._generation(index, student))
        self._worker = threading.Thread(target=self._follow, name="serve-follow", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Wait for a check in progress, then close the current generation once it is idle."""
        self._closing = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
        with self._state:
            old, self._current = self._current, None
        if old is not None:
            self._retire(old)

    @property
    def current(self) -> Generation | None:
        """The generation new requests get (None before `open` and after `close`)."""
        return self._current

    @contextmanager
    def hold(self) -> Iterator[Generation]:
        """The current generation, kept open until the caller is done with it."""
        with self._state:
            generation = self._current
            if generation is None:
                raise RuntimeError("the service is not running: its index and student are closed")
        with self.keep(generation):
            yield generation

    @contextmanager
    def keep(self, generation: Generation) -> Iterator[Generation]:
        """`generation` kept open until the caller is done with it, for a thread that computes
        a request's answer; one already closed (its request was answered 504 and its last
        holder left before this thread began) is a `DeadlineExceeded`."""
        with self._state:
            if generation.closed:
                raise DeadlineExceeded()
            generation.requests += 1
        try:
            yield generation
        finally:
            with self._state:
                generation.requests -= 1
                idle = self._closable(generation)
            close_parts(idle)

    def poke(self) -> None:
        """Between requests: wake the follower thread when `serve.reload_check_s` has passed
        since the last check began."""
        now = time.monotonic()
        with self._state:
            if now < self._next_check:
                return
            self._next_check = now + self.cfg.serve.reload_check_s
        self._wake.set()

    def _follow(self) -> None:
        """The one thread that checks and opens, for the server's life. Opening each build
        on a new thread instead costs ~20 MiB of resident memory per build that is never
        given back (native allocations made per thread, measured with the tiny models).
        Each check ends by handing the C heap that requests freed since back to the system:
        20 searches in flight leave peaks of freed heap behind them too."""
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self.refresh()
            except Exception as e:  # keep following: the next check may succeed
                self._fail("follow", f"a check for a new build or champion failed ({one_line(e)})")
            else:
                self.problems.pop("follow", None)
            release_freed_memory()

    def refresh(self) -> None:
        """Open what changed since the current generation, beside it, and swap it in."""
        current = self._current
        if current is None:
            return
        index = self._changed_index(current.index)
        student = self._changed_student(current.student)
        if index is None and student is None:
            return
        try:
            generation = self._generation(index or current.index, student or current.student)
        except Exception as e:  # rooms.parquet unreadable mid-rewrite: try again next check
            close_parts([part for part in (index, student) if part is not None])
            self._signature = None
            self._fail("rooms", f"the sample rooms could not be read ({one_line(e)})")
            return
        self.problems.pop("rooms", None)
        self._install(generation)
        self.swaps.update(part for part, new in (("index", index), ("student", student)) if new)

    # ---- opening ---------------------------------------------------------------------------------

    def _changed_index(self, current: IndexPart) -> IndexPart | None:
        """The newly published build, opened; None when none was published or it failed."""
        signature = manifest_signature(self.root)
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            if IndexSnapshot.current(self.root).manifest == current.snapshot.manifest:
                self.problems.pop("index", None)  # a bad publish was undone
                return None
            index = self._open_index()
        except Exception as e:  # Lucene, LanceDB and the files fail in many ways; keep serving
            old = current.snapshot.manifest.lucene
            why = f"the index build published in {self.root} could not be opened ({one_line(e)})"
            self._fail("index", f"{why}; still serving build {old}")
            return None
        self.problems.pop("index", None)
        return index

    def _changed_student(self, current: StudentPart) -> StudentPart | None:
        """The newly promoted champion, loaded; None when it did not move or cannot load."""
        if not self.follows_champion:
            return None
        try:
            adapter, version = self._pin()
        except Exception as e:  # the registry is down or unreadable: ask again next check
            why = f"the model registry could not be asked for the champion ({one_line(e)})"
            self._fail("student", f"{why}; still serving {current.describe()}")
            return None
        if version == current.version or version in self._refused:
            return None
        try:
            student = self._open_student(adapter, version)
        except Exception as e:  # a bad adapter fails in many ways; keep the loaded one
            self._refused.add(version)
            why = f"champion {self.cfg.student.registry} v{version} could not be loaded"
            self._fail("student", f"{why} ({one_line(e)}); still serving {current.describe()}")
            return None
        self.problems.pop("student", None)
        return student

    def _open_index(self) -> IndexPart:
        """The published build's retrieval stages, leased before its first file is read."""
        retrieval = [name for name in self.cfg.funnel.stages if name != AGENT]
        for _ in range(OPEN_ATTEMPTS):
            snapshot = IndexSnapshot.current(self.root)
            lease = lease_build(self.root, snapshot.manifest.lucene)
            try:
                funnel = build_funnel(self.cfg, retrieval, models=self.models)
                images = read_products(snapshot.lucene_path, ["key", "image_path"]).to_pylist()
            except BaseException:
                lease.release()
                raise
            if IndexSnapshot.current(self.root).manifest == snapshot.manifest:
                steps = [FunnelStep(self._locked(step.stage), step.k) for step in funnel.steps]
                paths = {row["key"]: Path(row["image_path"]) for row in images}
                return IndexPart(snapshot, steps, paths, lease)
            funnel.close()  # it may have opened the newer build: open again, leased
            lease.release()
        raise RuntimeError(f"{self.root} was re-published {OPEN_ATTEMPTS} times while opening it")

    def _open_student(self, adapter: str | None, version: int | None) -> StudentPart:
        """The agent with `adapter` (a pinned version, a folder or none), batching requests."""
        cfg = dataclasses.replace(
            self.cfg, student=dataclasses.replace(self.cfg.student, adapter=adapter or NO_ADAPTER)
        )
        stage = None
        if AGENT in cfg.funnel.stages:
            stage = open_agent(cfg)
            stage.batch_across_requests(cfg.serve.agent_batch_window_ms / 1000)
            runner = stage.batcher or stage.scorer
            stage.batcher = DeadlineScorer(runner, owned=runner is not stage.scorer)
        return StudentPart(stage, cfg.student.name, version, agent_notice(cfg))

    def _pin(self) -> tuple[str | None, int | None]:
        """The configured student's adapter, `auto` pinned to the champion's version now."""
        student = self.cfg.student
        if student.kind != "local":  # a served student is whatever its server holds
            return student.adapter, None
        return champion_pin(student.adapter, student.registry)

    def _locked(self, stage: Any) -> LockedStage | None:
        """Retrieval stages (loaded once, not thread-safe) run one request at a time."""
        return None if stage is None else LockedStage(stage, self.lock)

    def _generation(self, index: IndexPart, student: StudentPart) -> Generation:
        """The funnel of `index`'s retrieval stages and `student`'s agent, and the rooms."""
        steps = [
            FunnelStep(student.stage, step.k) if name == AGENT else step
            for name, step in zip(known_stages(), index.steps, strict=True)
        ]
        return Generation(index, student, read_rooms(self.cfg), funnel_of(self.cfg, steps))

    # ---- swapping --------------------------------------------------------------------------------

    def _install(self, new: Generation) -> None:
        """Make `new` current; the one it replaces closes when its last request ends."""
        with self._state:
            new.index.users += 1
            new.student.users += 1
            old, self._current = self._current, new
        if old is not None:
            self._retire(old)
            log.info("now serving %s", new.identity())

    def _retire(self, generation: Generation) -> None:
        with self._state:
            generation.retired = True
            idle = self._closable(generation)
        close_parts(idle)

    def _closable(self, generation: Generation) -> list[IndexPart | StudentPart]:
        """Under the state lock: the parts to close when a retired generation is idle."""
        if not generation.retired or generation.requests > 0 or generation.closed:
            return []
        generation.closed = True
        parts: list[IndexPart | StudentPart] = [generation.index, generation.student]
        for part in parts:
            part.users -= 1
        return [part for part in parts if part.users == 0]

    def _fail(self, part: str, message: str) -> None:
        self.problems[part] = message
        self.failures[part] += 1
        log.warning("%s", message)


def manifest_signature(root: Path) -> tuple[int, int, int] | None:
    """A cheap fingerprint of CURRENT.json: a publish replaces the file (new inode and time)."""
    try:
        stat = (root / MANIFEST_FILE).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
