"""Soak the search service: 1,000 searches, 20 at a time, with a re-index in the middle.

    python -m bench.serve_soak                       # 1,000 searches, 20 in flight
    python -m bench.serve_soak --searches 200 --concurrency 8

Builds a small world under a temporary folder (the generator's, 6 rooms per type), ingests
and indexes it, then starts `mars-serve` (`python -m mars_core.app.commands.serve`) with the tiny
student as a process of its own on 127.0.0.1 and sends searches from a thread pool over real
HTTP. When half of them are answered (or at each of `--reindexes` even steps), the catalogue changes
(products added and removed) and this process re-indexes it while searches stay in flight;
the service follows the new build (`serve.reload_check_s`). Prints requests/s, p50/p95
latency and the server's RSS after the warm-up, at each re-index and at the end, an RSS
sample every 100 answers, which builds answered, and every failed request. Not a test: it
asserts nothing, and the numbers belong to the machine it ran on.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
from tests.catalogue_factory import add_products, remove_products

from mars_core.app.compose import load_config
from mars_core.catalogue.ingest import ingest
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.config import MarsConfig
from mars_core.index.reindex import reindex
from mars_core.infra.runtime import setup_runtime
from mars_core.vision.embedder import Embedder
from mars_core.world.generate import generate_world

HOST = "127.0.0.1"  # loopback only
QUERIES = ["bed", "a lamp for the reading corner", "sofa", "a rug", "outdoor lounge chair"]
START_TIMEOUT_S = 600.0
SEARCH_TIMEOUT_S = 600.0
ADDED, REMOVED = 20, 10  # products the mid-run re-index adds and removes
RSS_EVERY = 100  # answers between samples of the server's RSS


@dataclass
class Soak:
    """The answers so far, in completion order: (seconds, status, build that answered)."""

    url: str
    photos: list[bytes]
    server_pid: int
    done: list[tuple[float, int, str]] = field(default_factory=list)
    rss_trace: list[tuple[int, float]] = field(default_factory=list)  # (answered, MiB)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, number: int) -> None:
        query = QUERIES[number % len(QUERIES)]
        files = {"room": ("room.png", self.photos[number % len(self.photos)], "image/png")}
        start = time.perf_counter()
        try:
            answer = httpx.post(
                f"{self.url}/search", data={"query": query}, files=files, timeout=SEARCH_TIMEOUT_S
            )
            status, build = answer.status_code, answer.headers.get("X-Mars-Index-Build", "?")
            problem = "" if status == 200 else f"search {number}: {status} {answer.text[:200]}"
        except httpx.HTTPError as e:
            status, build, problem = 0, "?", f"search {number}: {type(e).__name__}: {e}"
        with self.lock:
            self.done.append((time.perf_counter() - start, status, build))
            if problem:
                self.failures.append(problem)
            if len(self.done) % RSS_EVERY == 0:
                self.rss_trace.append((len(self.done), rss_mib(self.server_pid)))


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


def phase(name: str, rows: list[tuple[float, int, str]], seconds: float, rss: float) -> str:
    latency = np.array([row[0] for row in rows]) * 1000
    p50, p95 = np.percentile(latency, [50, 95])
    return (f"{name:<26} {len(rows):>5} searches  {len(rows) / seconds:6.2f} req/s  "
            f"p50 {p50:7.0f} ms  p95 {p95:7.0f} ms  server RSS {rss:7.1f} MiB")  # fmt: skip


def run(args: argparse.Namespace, folder: Path) -> None:
    os.environ["MARS_HOME"] = str(folder / "home")
    setup_runtime()
    overrides = [f"paths.models={args.models or folder / 'models'}",
                 f"paths.artifacts={folder / 'artifacts'}", "data.world.rooms_per_type=6",
                 f"serve.reload_check_s={args.reload_check_s}", *args.overrides]  # fmt: skip
    cfg = load_config(overrides)
    embedder = prepare(cfg)
    rooms = pq.read_table(Path(cfg.data.out_dir) / ROOMS_FILE, columns=["path"])["path"]
    photos = [Path(path).read_bytes() for path in rooms.to_pylist()[:8]]
    port = free_port()
    server = start_server(overrides, port, folder / "serve.log")
    try:
        soak = Soak(f"http://{HOST}:{port}", photos, server.pid)
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(soak.search, range(args.warmup)))
            marks = [Mark("warm-up done", args.warmup, time.perf_counter(), rss_mib(server.pid))]
            futures = [pool.submit(soak.search, n) for n in range(args.searches)]
            for number in range(1, args.reindexes + 1):
                due = args.warmup + args.searches * number // (args.reindexes + 1)
                while len(soak.done) < due:
                    time.sleep(0.2)
                mark = Mark("re-index", len(soak.done), time.perf_counter(), rss_mib(server.pid))
                mark.reindex = change_and_reindex(cfg, embedder, number)
                marks.append(mark)
            for future in futures:
                future.result()
            marks.append(Mark("end", len(soak.done), time.perf_counter(), rss_mib(server.pid)))
        health = followed_health(f"http://{HOST}:{port}", marks)
    finally:
        server.terminate()
        server.wait(timeout=60)
    report(args, soak, marks, health)


def followed_health(url: str, marks: list[Mark]) -> dict:
    """/health once the service answers from the last build published (a minute at most:
    it checks again only after `serve.reload_check_s`, and only when a request comes)."""
    last = [mark.reindex["build"] for mark in marks if mark.reindex]
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(f"{url}/health").json()
        if not last or health["index_build"] == last[-1] or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


@dataclass
class Mark:
    """A moment of the run: answers so far, the clock, the server's RSS, what happened."""

    what: str
    answered: int
    at: float
    rss: float
    reindex: dict[str, int | str | float] | None = None


def report(args: argparse.Namespace, soak: Soak, marks: list[Mark], health: dict) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.searches} searches "
        f"after {args.warmup} warm-up ones, {args.concurrency} in flight, tiny student"
    )
    print(f"server RSS after warm-up: {marks[0].rss:.1f} MiB")
    for begin, end in itertools.pairwise(marks):
        name = "from warm-up" if begin.what != "re-index" else "from re-index"
        rows = soak.done[begin.answered : end.answered]
        print(phase(f"{name} to {end.what}", rows, end.at - begin.at, end.rss))
    timed = soak.done[args.warmup :]
    print(phase("all timed searches", timed, marks[-1].at - marks[0].at, marks[-1].rss))
    for mark in marks:
        if mark.reindex:
            print(f"re-index after {mark.answered} answers: {mark.reindex}")
    print(f"answered by build: {dict(Counter(row[2] for row in timed))}")
    print(f"/health at the end: build {health['index_build']}, {health['products']} products")
    print(f"server RSS growth from warm-up to end: {marks[-1].rss - marks[0].rss:+.1f} MiB")
    trace = ", ".join(f"{answered}: {rss:.0f}" for answered, rss in soak.rss_trace)
    print(f"server RSS (MiB) by answered searches, warm-up included: {trace}")
    print(f"failed requests: {len(soak.failures)}")
    for failure in soak.failures[:20]:
        print(f"  {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=1000, help="timed searches")
    parser.add_argument("--concurrency", type=int, default=20, help="searches in flight")
    parser.add_argument("--warmup", type=int, default=200, help="searches before timing")
    parser.add_argument("--reindexes", type=int, default=1, help="re-indexes, spread evenly")
    parser.add_argument("--reload-check-s", type=float, default=1.0, help="serve.reload_check_s")
    parser.add_argument("--models", help="a tiny-model cache to reuse (default: a fresh one)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (world, index, service)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mars-soak-") as folder:
        run(args, Path(folder))


if __name__ == "__main__":
    main()
