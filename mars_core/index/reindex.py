"""Build or update both indexes from the catalogue, embedding only what changed.

One function serves the first build and every later one: products whose `content_hash` the
vector table already holds are not embedded again. The products to embed are cut into shards
of `index.upsert_rows` (other workers may embed them); each shard's vectors are upserted, one
commit, as soon as they arrive, so a crash loses at most the shards in flight and the next run
resumes where it stopped. None of it is visible to searches until the new manifest is
published, after the fresh Lucene index is complete. A product whose image cannot be loaded
is left out of both indexes for this build and reported as skipped; its content hash is not
recorded, so the next run retries it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from mars_core.catalogue.changes import KeyChanges, diff_hashes, key_hashes
from mars_core.catalogue.schema import CATALOGUE_SCHEMA, QUARANTINE_FILE
from mars_core.catalogue.tables import read_table
from mars_core.config import IndexConfig
from mars_core.embedder import ImageEmbedder
from mars_core.errors import RemovalGuardError, UserInputError
from mars_core.index.lance import VectorTable, row_hashes, with_vectors
from mars_core.index.lucene import write_lucene_index
from mars_core.index.store import (
    EMBEDDER_FILE,
    LUCENE_DIR,
    MANIFEST_FILE,
    IndexManifest,
    IndexSnapshot,
    folder_bytes,
    is_local,
    lance_location,
    publish,
    read_manifest,
    reindex_lock,
    write_json_atomic,
)
from mars_core.index.vectors import VECTORS_FILE, write_aligned_vectors
from mars_core.index.verify import (
    LANCE,
    LANCE_VERSION,
    VECTORS,
    RepairReport,
    VerifyReport,
    published_content,
    record_files,
    repair_before_reindex,
    replace_disagreeing_vectors,
    table_digest,
    verify_index,
)
from mars_core.index.vocabulary import CategoryVocabulary

Progress = Callable[[int, int], None]  # (done, total)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a re-index changes, relative to the published index, and the work it takes."""

    diff: KeyChanges  # relative to the published index
    to_embed: list[int]  # catalogue row numbers whose vector the table lacks
    to_refresh: list[int]  # row numbers whose vector is current but other fields are not
    to_delete: list[str]  # keys in the table that the catalogue no longer has

    @property
    def changes(self) -> bool:
        work = self.to_embed or self.to_refresh or self.to_delete
        diff = self.diff
        return bool(diff.added or diff.changed or diff.removed or work)


@dataclass
class ReindexReport:
    """Counts, sizes and timings of one run (logged to MLflow by the index flow)."""

    added: int
    changed: int  # new content hash: embedded again
    removed: int
    unchanged: int
    embedded: int  # images embedded by this run (fewer than added + changed when resuming)
    refreshed: int  # same content hash, other fields changed: rewritten with the old vector
    rows: int  # products in the published build (the catalogue less the skipped ones)
    published: bool  # False when the catalogue matched the published index
    lucene: str
    lance_version: int
    ann_index: bool
    categories: dict[str, int]
    unlockable_categories: list[str]  # in the catalogue, but no vocabulary word names them
    lucene_bytes: int = 0
    lance_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    # {"key", "reason"} of each product whose image could not be loaded: in neither index
    skipped: list[dict[str, str]] = field(default_factory=list)
    repair: RepairReport = field(default_factory=RepairReport)  # what verify found and fixed

    def changes(self) -> dict[str, int]:
        """Products added, changed, removed and unchanged, in that order."""
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        }

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics for MLflow."""
        counts = {k: v for k, v in asdict(self).items() if isinstance(v, int | bool | float)}
        counts["skipped"] = len(self.skipped)
        counts["repaired"] = len(self.repair.findings)
        counts["vectors_replaced"] = self.repair.vectors_replaced
        return {**counts, **{f"seconds_{k}": v for k, v in self.seconds.items()}}


def read_catalogue(path: Path) -> pa.Table:
    """The catalogue table, checked: the schema's columns present, keys unique, not empty."""
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} not found: run the ingest flow first")
    table = read_table(path, CATALOGUE_SCHEMA)
    table = table.select(CATALOGUE_SCHEMA.names).cast(CATALOGUE_SCHEMA)
    if table.num_rows == 0:
        raise ValueError(f"catalogue {path} has no products; nothing to index")
    counts = Counter(table["key"].to_pylist())
    duplicates = [key for key, n in counts.items() if n > 1]
    if duplicates:
        raise ValueError(f"catalogue {path} repeats keys {duplicates[:5]}; keys must be unique")
    return table


def plan_changes(
    catalogue: pa.Table,
    published: dict[str, tuple[str, str]],
    latest: dict[str, tuple[str, str]],
) -> Plan:
    """Diff the catalogue against the published index (for the counts) and the table's
    latest state (for the work: rows an interrupted run already wrote are not redone).

    Both map key -> (content_hash, row_hash); a product has changed when its content hash
    did, and only then does it need a new vector.
    """
    keys = catalogue["key"].to_pylist()
    current = list(zip(catalogue["content_hash"].to_pylist(), row_hashes(catalogue), strict=True))
    by_key = dict(zip(keys, current, strict=True))
    diff = diff_hashes(
        {key: content for key, (content, _) in published.items()}, key_hashes(catalogue)
    )
    to_embed, to_refresh = [], []
    for i, (key, (content, row)) in enumerate(zip(keys, current, strict=True)):
        stored = latest.get(key)
        if stored is None or stored[0] != content:
            to_embed.append(i)
        elif stored[1] != row:
            to_refresh.append(i)
    return Plan(
        diff=diff,
        to_embed=to_embed,
        to_refresh=to_refresh,
        to_delete=[k for k in latest if k not in by_key],
    )


def check_embedder(root: Path, embedder: ImageEmbedder) -> None:
    """Refuse to mix vectors of two models in one table; remember the model on first use."""
    path = root / EMBEDDER_FILE
    mine = {"model_id": embedder.model_id, "dim": embedder.dim}
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != mine:
            raise ValueError(
                f"index {root} holds vectors of {stored}, this embedder is {mine}: set "
                "index.dir to another folder for this embedder (or delete the old index)"
            )
        return
    write_json_atomic(path, mine)


@dataclass(frozen=True)
class EmbedShard:
    """Catalogue rows to embed as one unit of work (one task run on a mapped runner and one
    LanceDB commit): their keys and image paths travel with them, so a worker on another
    machine needs the images but not the catalogue table."""

    rows: list[int]
    keys: list[str]
    paths: list[str]


@dataclass
class ShardVectors:
    """A shard's vectors, row by row, and the products whose image could not be loaded."""

    rows: list[int]  # catalogue rows of `vectors`, in order (the shard's rows less the skipped)
    vectors: np.ndarray  # (len(rows), dim) float32 unit vectors
    skipped: list[dict[str, str]]  # {"key", "reason"}


# Embeds the shards, possibly on other workers; yields their results in shard order, each as
# soon as it is there (so it is committed while later shards still run).
EmbedShards = Callable[[list[EmbedShard]], Iterable[ShardVectors]]


def embed_shards_of(catalogue: pa.Table, rows: list[int], shard_rows: int) -> list[EmbedShard]:
    """`rows` cut into shards of `shard_rows`, in catalogue order."""
    if not rows:
        return []
    keys = catalogue["key"].take(rows).to_pylist()
    paths = catalogue["image_path"].take(rows).to_pylist()
    return [
        EmbedShard(rows[i : i + shard_rows], keys[i : i + shard_rows], paths[i : i + shard_rows])
        for i in range(0, len(rows), shard_rows)
    ]


def embed_shard(shard: EmbedShard, embedder: ImageEmbedder) -> ShardVectors:
    """The shard's vectors; an image that cannot be loaded is skipped with its reason (it
    gets no row, so a later run tries it again)."""
    skipped: list[dict[str, str]] = []
    bad: set[int] = set()

    def skip(position: int, error: UserInputError) -> None:
        bad.add(position)
        skipped.append({"key": shard.keys[position], "reason": str(error)})
        log.warning("skipping product %s: %s", shard.keys[position], error)

    batches = list(embedder.iter_images(shard.paths, progress=False, on_bad=skip))
    rows = [row for position, row in enumerate(shard.rows) if position not in bad]
    vectors = np.concatenate(batches) if batches else np.zeros((0, embedder.dim), np.float32)
    return ShardVectors(rows=rows, vectors=vectors, skipped=skipped)


def embed_in_process(embedder: ImageEmbedder) -> EmbedShards:
    """Shards embedded one after another by this process, lazily (each is committed before
    the next is embedded)."""

    def embed(shards: list[EmbedShard]) -> Iterator[ShardVectors]:
        return (embed_shard(shard, embedder) for shard in shards)

    return embed


def store_shards(
    table: VectorTable,
    catalogue: pa.Table,
    shards: list[EmbedShard],
    embed: EmbedShards,
    progress: Progress | None = None,
) -> tuple[int, list[dict[str, str]]]:
    """Embed the shards and upsert each one's vectors as it arrives, one commit a shard.

    Returns how many were embedded and the products skipped. A crash loses at most the
    shards not yet committed: the next run plans only what the table still lacks.
    """
    total = sum(len(shard.rows) for shard in shards)
    if total == 0:
        return 0, []
    done, skipped = 0, []
    with tqdm(total=total, desc="embed products") as bar:
        for shard, result in zip(shards, embed(shards), strict=True):
            if result.rows:
                table.upsert(with_vectors(catalogue.take(result.rows), result.vectors))
            done += len(result.rows)
            skipped.extend(result.skipped)
            bar.update(len(shard.rows))
            if progress is not None:
                progress(done + len(skipped), total)
    return done, skipped


def refresh_rows(table: VectorTable, catalogue: pa.Table, rows: list[int]) -> None:
    """Rewrite rows whose fields changed but not their content, keeping their vectors."""
    if not rows:
        return
    fresh = catalogue.take(rows)
    table.upsert(with_vectors(fresh, table.vectors(fresh["key"].to_pylist())))


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


def reindex(
    catalogue_path: Path,
    cfg: IndexConfig,
    embedder: ImageEmbedder,
    progress: Progress | None = None,
    embed: EmbedShards | None = None,
) -> ReindexReport:
    """Bring the index in `cfg.dir` up to date with the catalogue; publish it atomically.

    Plan (under the re-index lock) -> embed shards of `cfg.upsert_rows` products -> publish.
    `embed` runs the shards (a Prefect runner maps them over workers); by default this
    process embeds them with `embedder`, which also identifies the vectors and checks them.
    `progress(done, total)` hears of the products handled after each commit (an
    orchestrator's progress display; the terminal bar runs either way).
    """
    root = Path(cfg.dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with reindex_lock(root):
        with timed(seconds, "read"):
            catalogue = read_catalogue(catalogue_path)
            check_embedder(root, embedder)
        with timed(seconds, "verify"):
            found = VerifyReport(str(root))
            if has_builds(root):
                found = verify_index(root, cfg, embedder)
            manifest, repair = repair_before_reindex(root, cfg, found)
            table = VectorTable(lance_location(root, cfg.lance_uri), cfg.table, embedder.dim)
            if found.broken(VECTORS):
                repair.vectors_replaced = replace_disagreeing_vectors(table, embedder, cfg)
        with timed(seconds, "plan"):
            published = published_hashes(root, table, manifest, found)
            plan = plan_changes(catalogue, published, table.hashes())
            check_removals(len(plan.diff.removed), len(published), catalogue_path, cfg)
        embedded, skipped, published_now = 0, [], False
        stale = manifest is None or not found.ok or not IndexSnapshot(root, manifest).has_vectors
        if plan.changes or stale:
            embedded, skipped, manifest = apply_plan(
                plan, catalogue, catalogue_path, cfg, table, embedder, manifest, seconds,
                embed or embed_in_process(embedder), progress,
            )  # fmt: skip
            published_now = True
    seconds["total"] = round(time.perf_counter() - start, 4)
    return ReindexReport(
        **plan.diff.counts(),
        embedded=embedded,
        refreshed=len(plan.to_refresh) if published_now else 0,
        rows=manifest.rows,
        published=published_now,
        lucene=manifest.lucene,
        lance_version=manifest.lance_version,
        ann_index=table.has_ann(),
        categories=manifest.categories,
        unlockable_categories=sorted(
            set(manifest.categories) - CategoryVocabulary(cfg.vocabulary).categories
        ),
        lucene_bytes=folder_bytes(root / LUCENE_DIR / manifest.lucene),
        lance_bytes=lance_bytes(lance_location(root, cfg.lance_uri)),
        seconds=seconds,
        skipped=skipped,
        repair=repair,
    )


def preview_removals(catalogue_path: Path, cfg: IndexConfig) -> None:
    """`check_removals` before a flow starts, from the published build's products.arrow
    (the re-index checks again under its lock; a damaged index is left to its repair)."""
    try:
        manifest = read_manifest(Path(cfg.dir))
    except UserInputError:
        return
    if manifest is None:
        return
    published = published_content(Path(cfg.dir), manifest)
    current = set(pq.read_table(catalogue_path, columns=["key"])["key"].to_pylist())
    removed = sum(1 for key in published if key not in current)
    check_removals(removed, len(published), catalogue_path, cfg)


def has_builds(root: Path) -> bool:
    """Whether anything was ever published here (else a first build, nothing to verify)."""
    folder = root / LUCENE_DIR
    return (root / MANIFEST_FILE).exists() or (
        folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())
    )


def published_hashes(
    root: Path, table: VectorTable, manifest: IndexManifest | None, found: VerifyReport
) -> dict[str, tuple[str, str]]:
    """key -> (content_hash, row_hash) of the published build: from its LanceDB version, or
    from its products.arrow when that version is gone or damaged."""
    if manifest is None:
        return {}
    if found.broken(LANCE, LANCE_VERSION):
        return published_content(root, manifest)
    return table.hashes(manifest.lance_version)


def quarantined(catalogue_path: Path) -> int:
    """Records the ingest beside this catalogue quarantined (0 without a quarantine table)."""
    path = catalogue_path.parent / QUARANTINE_FILE
    return pq.read_metadata(path).num_rows if path.is_file() else 0


def check_removals(removed: int, published: int, catalogue_path: Path, cfg: IndexConfig) -> None:
    """Refuse a re-index that would drop more than `max_removal_share` of the live index.

    A truncated listings shard looks to the index like products withdrawn from sale; past
    the share, a person decides (`--allow-removals`, index.allow_removals=true).
    """
    if cfg.allow_removals or published == 0 or removed <= cfg.max_removal_share * published:
        return
    cause = f"{removed / published:.0%} of the live index, over index.max_removal_share="
    cause += f"{cfg.max_removal_share}"
    held = quarantined(catalogue_path)
    if held:
        cause += f"; ingest quarantined {held} records (see {QUARANTINE_FILE})"
    raise RemovalGuardError(
        f"this re-index would remove {removed} of {published} products from {cfg.dir} "
        f"({cause}); nothing was published. If the removals are meant, rerun with "
        "--allow-removals (or index.allow_removals=true)"
    )


def vector_writer(table: VectorTable) -> Callable[[list[str], Path], None]:
    """Writes the table's latest vectors into a Lucene build, in its document order."""

    def write(keys: list[str], folder: Path) -> None:
        write_aligned_vectors(table.iter_vectors(), keys, folder / VECTORS_FILE, table.dim)

    return write


def lance_bytes(uri: str) -> int:
    """Size of the LanceDB database, or 0 when it lives in an object store (not listed)."""
    return folder_bytes(Path(uri)) if is_local(uri) else 0


def without_keys(catalogue: pa.Table, keys: list[str]) -> pa.Table:
    """The catalogue less the products of `keys`."""
    if not keys:
        return catalogue
    return catalogue.filter(pc.invert(pc.is_in(catalogue["key"], value_set=pa.array(keys))))


def apply_plan(
    plan: Plan,
    catalogue: pa.Table,
    catalogue_path: Path,
    cfg: IndexConfig,
    table: VectorTable,
    embedder: ImageEmbedder,
    published: IndexManifest | None,
    seconds: dict[str, float],
    embed: EmbedShards,
    progress: Progress | None = None,
) -> tuple[int, list[dict[str, str]], IndexManifest]:
    """Write vectors, build a fresh Lucene folder, then publish both in one manifest swap.

    Products whose image could not be loaded are dropped from both: from the vector table
    too, where an earlier version of them would otherwise stay searchable.
    """
    root = Path(cfg.dir)
    with timed(seconds, "embed"):
        shards = embed_shards_of(catalogue, plan.to_embed, cfg.upsert_rows)
        embedded, skipped = store_shards(table, catalogue, shards, embed, progress)
    skipped_keys = [entry["key"] for entry in skipped]
    built = without_keys(catalogue, skipped_keys)
    if built.num_rows == 0:
        raise ValueError(
            f"no product image of {catalogue_path} could be loaded (first: {skipped[0]['reason']});"
            " nothing to publish, the previous index stays"
        )
    with timed(seconds, "refresh"):
        refresh_rows(table, catalogue, plan.to_refresh)
    with timed(seconds, "delete"):
        table.delete(plan.to_delete + skipped_keys)
    with timed(seconds, "lance_indexes"):
        table.ensure_indexes(cfg, pinned_version=published.lance_version if published else None)
    with timed(seconds, "lucene"):
        lucene = new_lucene_name()
        write_lucene_index(built, root / LUCENE_DIR / lucene, aligned=vector_writer(table))
    manifest = IndexManifest(
        lucene=lucene,
        lance_version=table.version,
        table=cfg.table,
        rows=built.num_rows,
        embedder=embedder.model_id,
        dim=embedder.dim,
        categories=dict(sorted(Counter(built["category"].to_pylist()).items())),
        catalogue=str(catalogue_path),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        vectors=VECTORS_FILE,
        lucene_files=record_files(root / LUCENE_DIR / lucene),
        lance_digest=table_digest(table.table),
        lance_uri=cfg.lance_uri,
    )
    with timed(seconds, "publish"):
        publish(root, manifest, keep_lucene=cfg.keep_lucene_versions)
    if skipped:
        log.warning("%d products skipped (image not loadable), retried next run", len(skipped))
    return embedded, skipped, manifest
