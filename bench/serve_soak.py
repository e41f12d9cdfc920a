"""Soak the search service: searches 20 at a time while it follows re-indexes and promotions.

    python -m bench.serve_soak                       # 10 re-indexes, 5 promotions, 20 in flight
    python -m bench.serve_soak --reindexes 3 --promotions 0 --concurrency 8

Builds a small world under a temporary folder (the generator's, 6 rooms per type), ingests
and indexes it, then starts `mars-serve` (`python -m mars_core.app.commands.serve`) with the
tiny student as a process of its own on 127.0.0.1 and keeps `--concurrency` searches in flight
over real HTTP for the whole run. After the warm-up, every `--between` answers one event
happens while searches stay in flight: a re-index (the catalogue changes: products added and
removed, and this process publishes a new build) or a promotion (a new student version,
a zero-initialised LoRA on the tiny student, takes the registry's champion alias); the
re-indexes and promotions interleave evenly. With promotions, the service starts on a
champion (version 1), as it does once the pipeline has promoted one: the first adapter a
process loads imports peft and what peft imports (~60 MiB, once).

Each event is marked once the service answers from what it published and `--between` more
searches are answered (so the generation it replaced has been released): the server's RSS
then is the curve this prints, with its growth from the first event's mark to the last.
Then the traffic stops and the server gets SIGTERM: its exit status says whether it drained.
Prints requests/s, p50/p95 latency, the RSS curve, an RSS sample every 100 answers, which
builds and students answered, and every failed request. Not a test: it asserts nothing, and
the numbers belong to the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq

from mars_core.agent.mlflow_model import log_student
from mars_core.app.compose import load_config
from mars_core.catalogue.ingest import ingest
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.config import MarsConfig
from mars_core.index.reindex import reindex
from mars_core.infra.registry import CHAMPION, set_alias
from mars_core.infra.runtime import setup_runtime
from mars_core.infra.tracking import mlflow_run
from mars_core.models.loading import load_vlm
from mars_core.vision.embedder import Embedder
from mars_core.world.generate import generate_world
from tests.support.catalogue_factory import add_products, remove_products

HOST = "127.0.0.1"  # loopback only
QUERIES = ["bed", "a lamp for the reading corner", "sofa", "a rug", "outdoor lounge chair"]
START_TIMEOUT_S = 600.0
SEARCH_TIMEOUT_S = 600.0
FOLLOW_TIMEOUT_S = 300.0  # for the service to answer from what an event published
EXIT_TIMEOUT_S = 120.0
ADDED, REMOVED = 20, 10  # products each re-index adds and removes
RSS_EVERY = 100  # answers between samples of the server's RSS


@dataclass
class Soak:
    """Searches kept in flight until `stop`; the answers, in completion order."""

    url: str
    photos: list[bytes]
    server_pid: int
    done: list[tuple[float, int, str]] = field(default_factory=list)  # seconds, status, by
    rss_trace: list[tuple[int, float]] = field(default_factory=list)  # (answered, MiB)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    _numbers: Any = field(default_factory=lambda: iter(range(sys.maxsize)))

    def run(self) -> None:
        """One in-flight slot: search after search until stopped."""
        while not self.stopped.is_set():
            with self.lock:
                number = next(self._numbers)
            self.search(number)

    def search(self, number: int) -> None:
        query = QUERIES[number % len(QUERIES)]
        files = {"room": ("room.png", self.photos[number % len(self.photos)], "image/png")}
        start = time.perf_counter()
        try:
            answer = httpx.post(
                f"{self.url}/search", data={"query": query}, files=files, timeout=SEARCH_TIMEOUT_S
            )
            status, by = answer.status_code, answered_by(answer.headers)
            problem = "" if status == 200 else f"search {number}: {status} {answer.text[:200]}"
        except httpx.HTTPError as e:
            status, by, problem = 0, "?", f"search {number}: {type(e).__name__}: {e}"
        with self.lock:
            self.done.append((time.perf_counter() - start, status, by))
            if problem:
                self.failures.append(problem)
            if len(self.done) % RSS_EVERY == 0:
                self.rss_trace.append((len(self.done), rss_mib(self.server_pid)))

    def wait_for(self, answered: int) -> None:
        while len(self.done) < answered:
            time.sleep(0.2)


def answered_by(headers: httpx.Headers) -> str:
    return f"{headers.get('X-Mars-Index-Build', '?')} / {headers.get('X-Mars-Student', '?')}"


@dataclass
class Mark:
    """A moment of the run: answers so far, the clock, the server's RSS, what happened."""

    what: str
    answered: int
    at: float
    rss: float
    detail: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(cfg: MarsConfig) -> Embedder:
    """The world, its catalogue and its first index build; the embedder for the re-index."""
    generate_world(cfg.data)
    ingest(cfg.data)
    embedder = Embedder.from_config(
        cfg.embedder, cfg.paths.models, max_image_pixels=cfg.data.max_image_pixels
    )
    reindex(Path(cfg.data.out_dir) / CATALOGUE_FILE, cfg.index, embedder)
    return embedder


def change_and_reindex(cfg: MarsConfig, embedder: Embedder, number: int) -> dict[str, Any]:
    """Add and remove products, then publish a new build (searches keep running)."""
    catalogue = Path(cfg.data.out_dir) / CATALOGUE_FILE
    keys = pq.read_table(catalogue, columns=["key"])["key"].to_pylist()
    remove_products(catalogue, keys[-REMOVED:])
    add_products(catalogue, ADDED, seed=90 + number)  # new keys each time
    start = time.perf_counter()
    report = reindex(catalogue, cfg.index, embedder)
    seconds = round(time.perf_counter() - start, 1)
    return {"build": report.lucene, "added": report.added, "removed": report.removed,
            "seconds": seconds}  # fmt: skip


def identity_lora(cfg: MarsConfig, folder: Path) -> Path:
    """A zero-initialised LoRA on the tiny student: a valid new version that changes no score."""
    from peft import LoraConfig, get_peft_model

    base = load_vlm(cfg.student, cfg.paths.models).model
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    return folder


def promote(cfg: MarsConfig, adapter: Path) -> dict[str, Any]:
    """Register `adapter` as a new version of the student and move the champion alias to it."""
    with mlflow_run("serve-soak", "promotion"):
        version = log_student(
            adapter,
            cfg.student,
            max_image_pixels=cfg.data.max_image_pixels,
            name=cfg.student.registry,
        )
    set_alias(cfg.student.registry, CHAMPION, version)
    return {"version": version}


def start_server(overrides: list[str], port: int, log: Path) -> subprocess.Popen:
    """`mars-serve` as its own process; returns once /health answers."""
    command = [
        *[sys.executable, "-m", "mars_core.app.commands.serve"],
        *[*overrides, f"serve.host={HOST}", f"serve.port={port}"],
    ]
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise SystemExit(f"error: mars-serve exited ({server.returncode}); see {log}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"error: mars-serve did not start in {START_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def wait_until(url: str, served: Callable[[dict], bool]) -> dict:
    """/health once `served` holds for it (the service checks between requests)."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while True:
        health = httpx.get(f"{url}/health", timeout=30).json()
        if served(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def schedule(reindexes: int, promotions: int) -> list[str]:
    """The events in order: the promotions spread evenly among the re-indexes."""
    total = reindexes + promotions
    promoted = {round((i + 1) * total / promotions) for i in range(promotions)}
    return ["promotion" if n in promoted else "reindex" for n in range(1, total + 1)]


def run(args: argparse.Namespace, folder: Path) -> None:
    os.environ["MARS_HOME"] = str(folder / "home")
    setup_runtime()
    overrides = [f"paths.models={args.models or folder / 'models'}",
                 f"paths.artifacts={folder / 'artifacts'}", "data.world.rooms_per_type=6",
                 f"serve.reload_check_s={args.reload_check_s}", *args.overrides]  # fmt: skip
    cfg = load_config(overrides)
    embedder = prepare(cfg)
    adapter = identity_lora(cfg, folder / "lora") if args.promotions else None
    if adapter is not None:  # the service starts on a champion, as after the pipeline's
        promote(cfg, adapter)
    rooms = pq.read_table(Path(cfg.data.out_dir) / ROOMS_FILE, columns=["path"])["path"]
    photos = [Path(path).read_bytes() for path in rooms.to_pylist()[:8]]
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = start_server(overrides, port, folder / "serve.log")
    soak = Soak(url, photos, server.pid)
    slots = [threading.Thread(target=soak.run) for _ in range(args.concurrency)]
    marks = [Mark("start", 0, time.perf_counter(), rss_mib(server.pid))]
    try:
        for slot in slots:
            slot.start()
        soak.wait_for(args.warmup)
        marks.append(Mark("warm-up", len(soak.done), time.perf_counter(), rss_mib(server.pid)))
        for number, kind in enumerate(schedule(args.reindexes, args.promotions), start=1):
            if kind == "reindex":
                detail = change_and_reindex(cfg, embedder, number)
                health = wait_until(url, lambda h, b=detail["build"]: h["index_build"] == b)
            else:
                detail = promote(cfg, adapter)
                version = detail["version"]
                health = wait_until(url, lambda h, v=version: h["student"]["version"] == v)
            detail["served"] = not health["problems"]
            soak.wait_for(len(soak.done) + args.between)
            marks.append(Mark(kind, len(soak.done), time.perf_counter(), rss_mib(server.pid)))
            marks[-1].detail = detail
            print(f"{kind} {number}: {detail}, server RSS {marks[-1].rss:.1f} MiB", flush=True)
    finally:
        soak.stopped.set()
        for slot in slots:
            slot.join()
        marks.append(Mark("end", len(soak.done), time.perf_counter(), rss_mib(server.pid)))
        server.send_signal(signal.SIGTERM)
        exit_status = server.wait(timeout=EXIT_TIMEOUT_S)
    report(args, soak, marks, exit_status)


def phase(name: str, rows: list[tuple[float, int, str]], seconds: float) -> str:
    latency = np.array([row[0] for row in rows]) * 1000
    p50, p95 = np.percentile(latency, [50, 95])
    return (f"{name:<28} {len(rows):>6} searches  {len(rows) / seconds:6.2f} req/s  "
            f"p50 {p50:7.0f} ms  p95 {p95:7.0f} ms")  # fmt: skip


def report(args: argparse.Namespace, soak: Soak, marks: list[Mark], exit_status: int) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.concurrency} searches in "
        f"flight, tiny student; {args.reindexes} re-indexes and {args.promotions} promotions, "
        f"{args.between} answers apart"
    )
    start, warm, *events, end = marks
    print(phase("warm-up", soak.done[: warm.answered], warm.at - start.at))
    timed = soak.done[warm.answered :]
    print(phase("after warm-up (all timed)", timed, end.at - warm.at))
    first = events[0].rss if events else warm.rss
    print("server RSS in MiB at each mark, and its change from the first event's mark:")
    for number, mark in enumerate(marks):
        label = f"{number - 1:>2} {mark.what}" if 1 < number < len(marks) - 1 else mark.what
        print(f"  {label:<14} after {mark.answered:>6} answers  {mark.rss:7.1f}  "
              f"{mark.rss - first:+6.1f}  {mark.detail or ''}")  # fmt: skip
    if events:
        growth = events[-1].rss - events[0].rss
        print(f"RSS growth from the first event to the last: {growth:+.1f} MiB")
    trace = ", ".join(f"{answered}: {rss:.0f}" for answered, rss in soak.rss_trace)
    print(f"server RSS (MiB) by answered searches, warm-up included: {trace}")
    print(f"answered by (build / student): {dict(Counter(row[2] for row in timed))}")
    print(f"failed requests: {len(soak.failures)} of {len(soak.done)}")
    for failure in soak.failures[:20]:
        print(f"  {failure}")
    print(f"mars-serve exit status after SIGTERM: {exit_status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=20, help="searches in flight")
    parser.add_argument("--warmup", type=int, default=200, help="answers before the first event")
    parser.add_argument("--reindexes", type=int, default=10, help="re-indexes")
    parser.add_argument("--promotions", type=int, default=5, help="promotions (new champions)")
    parser.add_argument("--between", type=int, default=100, help="answers between events")
    parser.add_argument("--reload-check-s", type=float, default=1.0, help="serve.reload_check_s")
    parser.add_argument("--models", help="a tiny-model cache to reuse (default: a fresh one)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (world, index, service)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mars-soak-") as folder:
        run(args, Path(folder))


if __name__ == "__main__":
    main()
