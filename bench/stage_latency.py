"""Stage 1 (BM25 + category lock) and stage 2 (vector re-rank) latency per query, by catalogue size.

    python -m bench.stage_latency                 # 10k and 100k products
    python -m bench.stage_latency --sizes 2000 20000 --queries 100

Each size gets a generated catalogue (tests/catalogue_factory.py: the ingest schema, synthetic
text) and a full index build through `mars_core.index.reindex`. The LanceDB side holds random
unit vectors of the real SigLIP-so400m size (1152-d) instead of embeddings: embedding 100k
images with a model only measures the embedder, which is timed on its own (the room photo,
tiny model) and does not depend on the catalogue size. Every size answers the same queries;
the script prints median and p95 per query and the growth ratio between sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mars_core.compose import load_config
from mars_core.embedder import Embedder
from mars_core.index.reindex import ReindexReport, reindex
from mars_core.index.store import IndexSnapshot
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage
from tests.catalogue_factory import CATEGORIES, COLORS, MATERIALS, write_catalogue

ROOM = Image.new("RGB", (64, 64), (128, 128, 128))


class RandomVectors:
    """Unit vectors derived from each image path: an index build without an image model."""

    name = "random"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.model_id = f"random-unit-{dim}"

    def iter_images(
        self, images: Sequence, *, progress: bool = True, on_bad: object = None
    ) -> Iterator[np.ndarray]:
        """Never reads an image, so none is ever bad (`on_bad` is not called)."""
        for start in range(0, len(images), 4096):
            batch = images[start : start + 4096]
            seed = int(hashlib.sha256(str(batch[0]).encode()).hexdigest()[:8], 16)
            vectors = np.random.default_rng(seed).normal(size=(len(batch), self.dim))
            yield (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def machine() -> str:
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if "model name" in ln
        ]
        cpu = names[0] if names else cpu
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    libs = ", ".join(f"{p} {version(p)}" for p in ("pyserini", "lancedb", "open_clip_torch"))
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, Python {platform.python_version()}; "
        f"{libs}"
    )


def make_queries(n: int, seed: int = 0) -> list[str]:
    """Locked queries ("blue oak sofa"), a few without a category word ("something green")."""
    rng = np.random.default_rng(seed)
    nouns = [noun for noun, _, _ in CATEGORIES.values()]
    queries = []
    for i in range(n):
        color, material = rng.choice(COLORS), rng.choice(MATERIALS)
        if i % 10 == 9:
            queries.append(f"something {color} {material}")
        else:
            queries.append(f"{color} {material} {rng.choice(nouns)}")
    return queries


def timed_ms(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, p95) in ms."""
    return statistics.median(samples), float(np.percentile(samples, 95))


class Size:
    """One catalogue size: its index build and both stages opened on it."""

    def __init__(self, n: int, work: Path, dim: int, overrides: list[str]) -> None:
        start = time.perf_counter()
        catalogue = write_catalogue(work / f"catalogue-{n}", n, write_images=False)
        self.generate_s = time.perf_counter() - start
        cfg = load_config([*overrides, f"index.dir={work / f'index-{n}'}"])
        embedder = RandomVectors(dim)
        self.n = n
        self.report: ReindexReport = reindex(catalogue, cfg.index, embedder)
        snapshot = IndexSnapshot.current(cfg.index.dir)
        self.lexical = LexicalStage.open(snapshot, cfg.index)
        self.visual = VisualStage.open(snapshot, cfg.index, embedder, text_weight=0.0)
        self.k1, self.k2 = cfg.funnel.k1, cfg.funnel.k2
        self.samples: list[tuple[float, float, float, int]] = []

    def query(self, query: str, room: np.ndarray) -> tuple[float, float, float, int]:
        """(BM25 ms, re-rank ms, category-filtered ANN ms, stage-1 candidates)."""
        request = SearchRequest(ROOM, query)
        bm25_ms, out = timed_ms(lambda: self.lexical.rank(request, None, self.k1))
        rerank_ms, _ = timed_ms(lambda: self.visual.rerank(room, out.candidates, self.k2))
        category = out.lock.category
        nearest_ms, _ = timed_ms(lambda: self.visual.nearest(room, self.k2, category=category))
        return bm25_ms, rerank_ms, nearest_ms, len(out.candidates)

    def stats(self, column: int) -> tuple[float, float]:
        return summary([s[column] for s in self.samples])


def measure(sizes: list[Size], queries: list[str], rooms: np.ndarray, warmup: int) -> None:
    """Every query on every size in turn, so load from elsewhere hits all sizes alike."""
    for i, (query, room) in enumerate(zip(queries, rooms, strict=True)):
        for size in sizes:
            sample = size.query(query, room)
            if i >= warmup:
                size.samples.append(sample)


def room_embedding_ms(models: str, rooms: int) -> dict[int, tuple[float, float]]:
    """Tiny-model room-photo embedding per query, with torch's default threads and with one.

    It does not depend on the catalogue size. On a small shared machine the intra-op threads
    of a tiny model mostly wait for each other, hence both numbers.
    """
    cfg = load_config([f"paths.models={models}"])
    embedder = Embedder.from_config(
        cfg.embedder, cfg.paths.models, max_image_pixels=cfg.data.max_image_pixels
    )
    photos = [Image.new("RGB", (640, 480), (i % 255, 80, 160)) for i in range(rooms)]
    default_threads = torch.get_num_threads()
    results = {}
    for threads in dict.fromkeys([default_threads, 1]):
        torch.set_num_threads(threads)
        embedder.embed_images(photos[:3], progress=False)
        samples = [
            timed_ms(lambda p=p: embedder.embed_images([p], progress=False))[0] for p in photos
        ]
        results[threads] = summary(samples)
    torch.set_num_threads(default_threads)
    return results


def print_results(
    sizes: list[Size], room: dict[int, tuple[float, float]], dim: int, queries: int
) -> None:
    print("\nsizes: products | ANN | build s (lucene / lance indexes / total) | on disk")
    for size in sizes:
        rep, s = size.report, size.report.seconds
        print(
            f"  {size.n:>7,} | {'IVF-PQ' if rep.ann_index else 'none':6} | "
            f"{s['lucene']:.1f} / {s['lance_indexes']:.1f} / {s['total']:.1f} "
            f"(+ catalogue generation {size.generate_s:.1f}) | "
            f"lucene {rep.lucene_bytes / 2**20:.1f} MiB, lance {rep.lance_bytes / 2**20:.0f} MiB"
        )
    print(
        f"\nper query, ms (median / p95), {queries} queries, {dim}-d random unit vectors "
        "in LanceDB (not image embeddings):"
    )
    print(
        f"  {'products':>9} | {'stage 1 BM25 top-k1':>19} | {'stage 2 re-rank k1->k2':>22} | "
        f"{'stage 2 ANN top-k2, category prefilter':>38}"
    )
    for size in sizes:
        (b50, b95), (r50, r95), (n50, n95) = (size.stats(c) for c in range(3))
        print(
            f"  {size.n:>9,} | {b50:>8.2f} / {b95:>8.2f} | {r50:>10.2f} / {r95:>9.2f} | "
            f"{n50:>18.2f} / {n95:>17.2f}"
        )
    candidates = ", ".join(str(int(statistics.median(s[3] for s in z.samples))) for z in sizes)
    print(f"  (k1 = {sizes[0].k1}, k2 = {sizes[0].k2}; median stage-1 candidates: {candidates})")
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        print(f"\ngrowth {a.n:,} -> {b.n:,} products (x{b.n / a.n:.0f}), median latency ratio:")
        for column, stage in enumerate(("stage 1 BM25", "stage 2 re-rank", "stage 2 ANN")):
            print(f"  {stage:16} x{b.stats(column)[0] / a.stats(column)[0]:.2f}")
    print("\nroom photo embedding per query (tiny model, 64 px input, any catalogue size):")
    for threads, (median, p95) in room.items():
        print(f"  torch threads {threads}: {median:.2f} / {p95:.2f} ms (median / p95)")
    print("  (SigLIP-so400m on this CPU: ~7.6 s per image in fp32, ENVIRONMENT.md)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=220, help="queries per size")
    parser.add_argument("--warmup", type=int, default=20, help="first queries, not timed")
    parser.add_argument("--dim", type=int, default=1152, help="vector size (SigLIP-so400m: 1152)")
    parser.add_argument("--work", type=Path, default=None, help="keep the built indexes here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="mars-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = ["index=full", "funnel=full", f"paths.models={work / 'models'}"]
    print(f"machine: {machine()}")
    queries = make_queries(args.queries)
    rng = np.random.default_rng(1)
    rooms = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    rooms /= np.linalg.norm(rooms, axis=1, keepdims=True)
    try:
        sizes = [Size(n, work, args.dim, overrides) for n in args.sizes]
        measure(sizes, queries, rooms, args.warmup)
        room = room_embedding_ms(str(work / "models"), 50)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print_results(sizes, room, args.dim, args.queries - args.warmup)


if __name__ == "__main__":
    main()
