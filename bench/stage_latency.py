"""Stage 1 (BM25 + category lock) and stage 2 (vector re-rank) per query, beside the raw engines.

    python -m bench.stage_latency                          # 10k, 100k and 1M products
    python -m bench.stage_latency --sizes 2000 20000 --queries 100

Each size gets a generated catalogue (the categories, colours, materials and sentences of
tests/support/catalogue_factory.py, in the ingest schema, vectorised so a million rows take seconds)
and a build made with the production writers: `write_lucene_index` writes the Lucene
documents, `products.arrow` and the aligned `vectors.npy`; the LanceDB table the manifest
pins holds the same vectors; `publish` writes the manifest. Vectors are random unit vectors
(embedding a million images measures only the embedder; the room photo's embedding is timed
on its own). No ANN index is built: stage 2 here is the re-rank of stage 1's candidates.

Per query, on the same index and in the same run:
* stage 1, `LexicalStage.rank` (analysis, lock, search, one listing per item, candidates),
  beside pyserini's own `LuceneSearcher.search` of the same Lucene query (terms and category
  filter, built beforehand) at the same k;
* stage 2, `VisualStage.rerank` of those candidates to k2, beside a bare numpy gather + dot
  + top-k2 over the same memory-mapped vectors and rows.
Sizes from `--big-from` on use `--big-dim` vectors and the first `--big-queries` queries.
"""

from __future__ import annotations

from mars_core.infra.runtime import setup_runtime

setup_runtime()  # an entry point: offline before the imports below load the hub

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from mars_core.app.compose import load_config
from mars_core.catalogue.schema import CATALOGUE_SCHEMA
from mars_core.config import IndexConfig
from mars_core.funnel.stages import BM25, SIGLIP
from mars_core.index.lance import ROW_HASH, VECTOR, table_schema
from mars_core.index.lucene import INDEX_DIR, PRODUCTS_FILE, write_lucene_index
from mars_core.index.store import LANCE_DIR, LUCENE_DIR, IndexManifest, IndexSnapshot, publish
from mars_core.index.vectors import VECTORS_FILE, write_aligned_vectors
from mars_core.infra.batching import batched
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage
from mars_core.vision.embedder import Embedder
from tests.support.catalogue_factory import BRANDS, CATEGORIES, COLORS, DOMAIN, MATERIALS, STYLES

ROOM = Image.new("RGB", (64, 64), (128, 128, 128))
CHUNK = 100_000  # catalogue rows generated (and vectors written) at a time


class RandomVectors:
    """Stands in for the embedder: the model id and size the manifest and stage 2 check."""

    def __init__(self, dim: int) -> None:
        self.name = "random"
        self.dim = dim
        self.model_id = f"random-unit-{dim}"


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
    libs = ", ".join(f"{p} {version(p)}" for p in ("pyserini", "lancedb", "numpy"))
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, Python {platform.python_version()}; "
        f"{libs}"
    )


def rss_mib() -> float:
    """Resident memory of this process (JVM included), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def catalogue_chunk(start: int, n: int, seed: int) -> pa.Table:
    """Rows start..start+n of a generated catalogue in the ingest schema (unique items)."""
    rng = np.random.default_rng([seed, start])
    categories = list(CATEGORIES)
    index = np.arange(start, start + n)
    category = [categories[i % len(categories)] for i in index]
    color = [COLORS[i] for i in rng.integers(len(COLORS), size=n)]
    material = [MATERIALS[i] for i in rng.integers(len(MATERIALS), size=n)]
    style = [STYLES[i] for i in rng.integers(len(STYLES), size=n)]
    brand = [BRANDS[i] for i in rng.integers(len(BRANDS), size=n)]
    item = [f"B{seed:02d}{i:08d}" for i in index]
    noun = [CATEGORIES[c][0] for c in category]
    name = [
        f"{s.title()} {c} {m} {o}" for s, c, m, o in zip(style, color, material, noun, strict=True)
    ]
    description = [
        f"A {s} {o} in {c} {m}. {CATEGORIES[k][2]}"
        for s, o, c, m, k in zip(style, noun, color, material, category, strict=True)
    ]
    search_text = [
        f"{nm} {c} {m} {s} {o} {c} {m} {s} {d}"
        for nm, c, m, s, o, d in zip(name, color, material, style, noun, description, strict=True)
    ]
    columns = {
        "key": [f"{i}@{DOMAIN}" for i in item],
        "item_id": item,
        "domain": [DOMAIN] * n,
        "name": name,
        "category": category,
        "product_type": category,
        "brand": brand,
        "color": color,
        "material": material,
        "style": style,
        "keywords": [[o, c, m, s] for o, c, m, s in zip(noun, color, material, style, strict=True)],
        "description": description,
        "search_text": search_text,
        "image_id": item,
        "image_path": [f"/nowhere/{i}.png" for i in item],
        "image_width": [32] * n,
        "image_height": [32] * n,
        "content_hash": item,
        "language": ["en_US"] * n,
        "source": ["bench"] * n,
    }
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
        for f in CATALOGUE_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=CATALOGUE_SCHEMA)


def vector_chunk(start: int, n: int, dim: int, seed: int) -> np.ndarray:
    """Random unit vectors of rows start..start+n (the same whenever asked)."""
    vectors = np.random.default_rng([seed, 1, start]).standard_normal((n, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_index(root: Path, n: int, dim: int, cfg: IndexConfig, seed: int = 0) -> dict:
    """A published index of `n` generated products; returns build seconds and sizes on disk."""
    start = time.perf_counter()
    parts = batched(range(n), CHUNK)
    catalogue = pa.concat_tables(catalogue_chunk(part.start, len(part), seed) for part in parts)
    seconds = {"catalogue": time.perf_counter() - start}

    def chunks() -> Iterator[tuple[pa.Table, np.ndarray]]:
        for part in batched(range(n), CHUNK):
            yield (
                catalogue.slice(part.start, len(part)),
                vector_chunk(part.start, len(part), dim, seed),
            )

    def aligned(keys: list[str], folder: Path) -> None:
        batches = ((rows["key"].to_pylist(), vectors) for rows, vectors in chunks())
        write_aligned_vectors(batches, keys, folder / VECTORS_FILE, dim)

    def lance_rows() -> Iterator[pa.RecordBatch]:
        for rows, vectors in chunks():
            rows = rows.append_column(ROW_HASH, pa.array([""] * rows.num_rows))
            flat = pa.array(vectors.ravel())
            rows = rows.append_column(VECTOR, pa.FixedSizeListArray.from_arrays(flat, dim))
            yield from rows.cast(table_schema(dim)).to_batches()

    start = time.perf_counter()
    lucene = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-bench"
    write_lucene_index(catalogue, root / LUCENE_DIR / lucene, aligned=aligned)
    seconds["lucene + vectors"] = time.perf_counter() - start
    start = time.perf_counter()
    table = lancedb.connect(str(root / LANCE_DIR)).create_table(
        cfg.table, data=lance_rows(), schema=table_schema(dim)
    )
    seconds["lance"] = time.perf_counter() - start
    manifest = IndexManifest(
        lucene=lucene,
        lance_version=int(table.version),
        table=cfg.table,
        rows=n,
        embedder=RandomVectors(dim).model_id,
        dim=dim,
        categories=dict(sorted(Counter(catalogue["category"].to_pylist()).items())),
        catalogue="generated by bench.stage_latency",
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        vectors=VECTORS_FILE,
    )
    publish(root, manifest, keep_lucene=1)
    build = root / LUCENE_DIR / lucene
    disk = {
        "lucene": folder_mib(build / INDEX_DIR),
        "products.arrow": (build / PRODUCTS_FILE).stat().st_size / 2**20,
        "vectors.npy": (build / VECTORS_FILE).stat().st_size / 2**20,
        "lance": folder_mib(root / LANCE_DIR),
    }
    return {"seconds": seconds, "disk": disk}


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


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
    """One catalogue size: its build, both stages and pyserini's searcher opened on it."""

    COLUMNS = ("stage 1", "pyserini", "stage 2", "numpy")

    def __init__(self, n: int, work: Path, dim: int, queries: int, overrides: list[str]) -> None:
        root = work / f"index-{n}"
        cfg = load_config([*overrides, f"index.dir={root}"])
        self.n, self.dim, self.queries = n, dim, queries
        self.build = build_index(root, n, dim, cfg.index)
        rss = rss_mib()
        snapshot = IndexSnapshot.current(root)
        self.lexical = LexicalStage.open(snapshot, cfg.index, name=BM25)
        self.visual = VisualStage.open(
            snapshot, cfg.index, RandomVectors(dim), name=SIGLIP, text_weight=0.0
        )
        self.matrix = np.load(snapshot.lucene_path / VECTORS_FILE, mmap_mode="r")
        from pyserini.search.lucene import LuceneSearcher

        self.pyserini = LuceneSearcher(str(snapshot.lucene_path / INDEX_DIR))
        self.pyserini.set_bm25(cfg.index.bm25_k1, cfg.index.bm25_b)
        self.open_rss = rss_mib() - rss
        self.k1, self.k2 = cfg.funnel.k1, cfg.funnel.k2
        self.samples: list[tuple[float, float, float, float]] = []
        self.refetched = 0

    def query(self, query: str, room: np.ndarray) -> tuple[float, float, float, float]:
        """(stage 1 ms, pyserini ms, stage 2 ms, numpy ms) of one query."""
        request = SearchRequest(ROOM, query)
        stage1_ms, out = timed_ms(lambda: self.lexical.rank(request, None, self.k1))
        index = self.lexical.index
        lucene_query = index.query(index.analyze(query), out.lock.category)
        raw_ms, _ = timed_ms(lambda: self.pyserini.search(lucene_query, self.k1))
        stage2_ms, _ = timed_ms(lambda: self.visual.rerank(room, out.candidates, self.k2))
        rows = np.array([c.row for c in out.candidates], dtype=np.int64)
        numpy_ms, _ = timed_ms(lambda: np.argsort(-(self.matrix[rows] @ room))[: self.k2])
        self.refetched += out.details["fetched"] > self.k1
        return stage1_ms, raw_ms, stage2_ms, numpy_ms

    def median(self, column: int) -> float:
        return summary([s[column] for s in self.samples])[0]

    def stats(self, column: int) -> tuple[float, float]:
        return summary([s[column] for s in self.samples])


def measure(sizes: list[Size], queries: list[str], seed: int, warmup: int) -> None:
    """Every query on every size in turn, so load from elsewhere hits all sizes alike."""
    rooms = {}
    for size in sizes:
        vectors = np.random.default_rng([seed, size.dim]).standard_normal((len(queries), size.dim))
        rooms[size.n] = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(
            np.float32
        )
    for i, query in enumerate(queries):
        for size in sizes:
            if i < size.queries:
                sample = size.query(query, rooms[size.n][i])
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
    sizes: list[Size], room: dict[int, tuple[float, float]], warmup: int, query_rss: float
) -> None:
    k1, k2 = sizes[0].k1, sizes[0].k2
    print(f"\nper query, ms, median (p95); k1 = {k1}, k2 = {k2}; random unit vectors:")
    print(
        "| products | dim | queries | stage 1 | pyserini | stage 1 / pyserini | "
        "stage 2 re-rank | numpy gather+dot | stage 2 / numpy | stage 2 / stage 1 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        cells = [f"{m:.2f} ({p:.2f})" for m, p in (size.stats(c) for c in range(4))]
        s1, raw, s2, dot = (size.median(c) for c in range(4))
        print(
            f"| {size.n:,} | {size.dim} | {len(size.samples)} | {cells[0]} | {cells[1]} | "
            f"×{s1 / raw:.2f} | {cells[2]} | {cells[3]} | ×{s2 / dot:.1f} | ×{s2 / s1:.2f} |"
        )
    refetched = ", ".join(f"{s.refetched}/{s.queries}" for s in sizes)
    print(f"(queries whose top k1 was cut short by listings of one item, re-fetched: {refetched})")
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        growth = ", ".join(
            f"{name} ×{b.median(c) / a.median(c):.2f}" for c, name in enumerate(Size.COLUMNS)
        )
        print(f"\ngrowth {a.n:,} -> {b.n:,} products (×{b.n // a.n}), medians: {growth}")
    print("\nbuild, disk and memory:")
    print(
        "| products | dim | build s (catalogue / lucene + vectors / lance) | lucene MiB | "
        "products.arrow MiB | vectors.npy MiB | lance MiB | RSS growth at open, MiB |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        s, d = size.build["seconds"], size.build["disk"]
        print(
            f"| {size.n:,} | {size.dim} | {s['catalogue']:.0f} / {s['lucene + vectors']:.0f} / "
            f"{s['lance']:.0f} | {d['lucene']:.1f} | {d['products.arrow']:.1f} | "
            f"{d['vectors.npy']:.1f} | {d['lance']:.1f} | +{size.open_rss:.0f} |"
        )
    big = sizes[-1]
    per_million = 1_000_000 / big.n
    d = big.build["disk"]
    search_disk = d["lucene"] + d["products.arrow"] + d["vectors.npy"]
    print(
        f"per million products (from {big.n:,}, {big.dim}-d): search build on disk "
        f"{search_disk * per_million:.0f} MiB (vectors {d['vectors.npy'] * per_million:.0f}: "
        f"4 x dim bytes a product), LanceDB {d['lance'] * per_million:.0f} MiB; search "
        f"process RSS at open +{big.open_rss * per_million:.0f} MiB"
    )
    print(f"RSS growth while answering every query on every size: +{query_rss:.0f} MiB")
    print("\nroom photo embedding per query (tiny model, 64 px input, any catalogue size):")
    for threads, (median, p95) in room.items():
        print(f"  torch threads {threads}: {median:.2f} / {p95:.2f} ms (median / p95)")
    print("  (SigLIP-so400m on a 2-core CPU: ~7.6 s per image in fp32, measured 2026-11)")
    print(f"({warmup} warm-up queries per size not timed)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=220, help="queries per size")
    parser.add_argument("--warmup", type=int, default=20, help="first queries, not timed")
    parser.add_argument("--dim", type=int, default=1152, help="vector size (SigLIP-so400m: 1152)")
    parser.add_argument("--big-from", type=int, default=1_000_000, help="a 'big' size from here")
    parser.add_argument("--big-dim", type=int, default=256, help="vector size of big sizes")
    parser.add_argument("--big-queries", type=int, default=120, help="queries of big sizes")
    parser.add_argument("--work", type=Path, default=None, help="keep the built indexes here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="mars-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = ["index=full", "funnel=full", f"paths.models={work / 'models'}"]
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    queries = make_queries(args.queries)
    try:
        sizes = []
        for n in args.sizes:
            big = n >= args.big_from
            dim = args.big_dim if big else args.dim
            count = min(args.big_queries, args.queries) if big else args.queries
            sizes.append(Size(n, work, dim, count, overrides))
            print(f"built {n:,} products: {sizes[-1].build['seconds']}", flush=True)
        before = rss_mib()
        measure(sizes, queries, seed=1, warmup=args.warmup)
        query_rss = rss_mib() - before
        room = room_embedding_ms(str(work / "models"), 50)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print_results(sizes, room, args.warmup, query_rss)


if __name__ == "__main__":
    main()
