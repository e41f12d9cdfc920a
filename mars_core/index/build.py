"""Carry out a re-index's plan: write the vectors, build a fresh Lucene folder, and publish
both in one manifest swap (see `mars_core.index.reindex` for the run around it)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pyarrow.compute as pc

from mars_core.config import IndexConfig
from mars_core.index.digest import record_files, table_digest
from mars_core.index.lance import VectorTable, with_vectors
from mars_core.index.lucene import write_lucene_index
from mars_core.index.plan import Plan
from mars_core.index.shards import EmbedShards, Progress, embed_shards_of, store_shards
from mars_core.index.store import LUCENE_DIR, IndexManifest, publish
from mars_core.index.vectors import VECTORS_FILE, write_aligned_vectors
from mars_core.infra.skipped import Skipped
from mars_core.vision.embedder import ImageEmbedder

log = logging.getLogger(__name__)


@dataclass
class PlannedBuild:
    """A re-index's plan and everything carrying it out needs (`apply_plan`'s argument)."""

    plan: Plan
    catalogue: pa.Table
    catalogue_path: Path
    cfg: IndexConfig
    table: VectorTable  # the vectors' table, open for writing
    embedder: ImageEmbedder  # names the vectors in the manifest
    published: IndexManifest | None  # the build searches use now (its version stays pinned)
    embed: EmbedShards  # runs the shards, in this process or on workers
    progress: Progress | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds, filled in


@contextmanager
def timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = round(time.perf_counter() - start, 4)


def new_lucene_name() -> str:
    """Folder names sort by build time (pruning keeps the newest)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid4().hex[:6]}"


def refresh_rows(table: VectorTable, catalogue: pa.Table, rows: list[int]) -> None:
    """Rewrite rows whose fields changed but not their content, keeping their vectors."""
    if not rows:
        return
    fresh = catalogue.take(rows)
    table.upsert(with_vectors(fresh, table.vectors(fresh["key"].to_pylist())))


def vector_writer(table: VectorTable) -> Callable[[list[str], Path], None]:
    """Writes the table's latest vectors into a Lucene build, in its document order."""

    def write(keys: list[str], folder: Path) -> None:
        write_aligned_vectors(table.iter_vectors(), keys, folder / VECTORS_FILE, table.dim)

    return write


def without_keys(catalogue: pa.Table, keys: list[str]) -> pa.Table:
    """The catalogue less the products of `keys`."""
    if not keys:
        return catalogue
    return catalogue.filter(pc.invert(pc.is_in(catalogue["key"], value_set=pa.array(keys))))


def new_manifest(build: PlannedBuild, built: pa.Table, lucene: str) -> IndexManifest:
    """The manifest of the products `built` into Lucene folder `lucene` and the table's
    latest version, with the digests verify checks them against."""
    cfg, table = build.cfg, build.table
    return IndexManifest(
        lucene=lucene,
        lance_version=table.version,
        table=cfg.table,
        rows=built.num_rows,
        embedder=build.embedder.model_id,
        dim=build.embedder.dim,
        categories=dict(sorted(Counter(built["category"].to_pylist()).items())),
        catalogue=str(build.catalogue_path),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        vectors=VECTORS_FILE,
        lucene_files=record_files(Path(cfg.dir) / LUCENE_DIR / lucene),
        lance_digest=table_digest(table.table),
        lance_uri=cfg.lance_uri,
    )


def apply_plan(build: PlannedBuild) -> tuple[int, list[Skipped], IndexManifest]:
    """Write vectors, build a fresh Lucene folder, then publish both in one manifest swap.

    Products whose image could not be loaded are dropped from both: from the vector table
    too, where an earlier version of them would otherwise stay searchable.
    """
    plan, catalogue, cfg, table = build.plan, build.catalogue, build.cfg, build.table
    root, seconds = Path(cfg.dir), build.seconds
    with timed(seconds, "embed"):
        shards = embed_shards_of(catalogue, plan.to_embed, cfg.upsert_rows)
        embedded, skipped = store_shards(table, catalogue, shards, build.embed, build.progress)
    skipped_keys = [entry.key for entry in skipped]
    built = without_keys(catalogue, skipped_keys)
    if built.num_rows == 0:
        raise ValueError(
            f"no product image of {build.catalogue_path} could be loaded "
            f"(first: {skipped[0]}); nothing to publish, the previous index stays"
        )
    with timed(seconds, "refresh"):
        refresh_rows(table, catalogue, plan.to_refresh)
    with timed(seconds, "delete"):
        table.delete(plan.to_delete + skipped_keys)
    with timed(seconds, "lance_indexes"):
        pinned = build.published.lance_version if build.published else None
        table.ensure_indexes(cfg, pinned_version=pinned)
    with timed(seconds, "lucene"):
        lucene = new_lucene_name()
        write_lucene_index(built, root / LUCENE_DIR / lucene, aligned=vector_writer(table))
    manifest = new_manifest(build, built, lucene)
    with timed(seconds, "publish"):
        publish(root, manifest, keep_lucene=cfg.keep_lucene_versions)
    if skipped:
        log.warning("%d products skipped (image not loadable), retried next run", len(skipped))
    return embedded, skipped, manifest
