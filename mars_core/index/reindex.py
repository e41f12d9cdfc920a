"""Build or update both indexes from the catalogue, embedding only what changed.

One function serves the first build and every later one: products whose `content_hash` the
vector table already holds are not embedded again. The products to embed are cut into shards
of `index.upsert_rows` (other workers may embed them); each shard's vectors are upserted, one
commit, as soon as they arrive, so a crash loses at most the shards in flight and the next run
resumes where it stopped. None of it is visible to searches until the new manifest is
published, after the fresh Lucene index is complete. A product whose image cannot be loaded
is left out of both indexes for this build and reported as skipped; its content hash is not
recorded, so the next run retries it.

Each step has its module: `verify` and `repair` (what is broken, and its fix), `plan` (what
changed), `shards` (the embedding), `build` (writing and publishing the new build).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mars_core.config import IndexConfig
from mars_core.index.build import PlannedBuild, apply_plan, timed
from mars_core.index.lance import VectorTable
from mars_core.index.plan import check_removals, plan_changes, published_hashes, read_catalogue
from mars_core.index.repair import (
    RepairReport,
    has_builds,
    repair_before_reindex,
    replace_disagreeing_vectors,
)
from mars_core.index.shards import EmbedShards, Progress, embed_in_process
from mars_core.index.store import (
    EMBEDDER_FILE,
    LUCENE_DIR,
    IndexSnapshot,
    folder_bytes,
    is_local,
    lance_location,
    reindex_lock,
    write_json_atomic,
)
from mars_core.index.verify import VECTORS, VerifyReport, verify_index
from mars_core.index.vocabulary import CategoryVocabulary
from mars_core.infra.skipped import Skipped
from mars_core.vision.embedder import ImageEmbedder


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
    # each product whose image could not be loaded: in neither index
    skipped: list[Skipped] = field(default_factory=list)
    repair: RepairReport = field(default_factory=RepairReport)  # what verify found and fixed

    def changes(self) -> dict[str, int]:
        """Products added, changed, removed and unchanged, in that order."""
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        }

    def summary(self) -> str:
        """What the index command prints: what was repaired, what changed, what is in the
        build and what could not go in."""
        lines = [f"repaired {f['part']}: {f['problem']}" for f in self.repair.findings]
        counts = ", ".join(f"{k} {n}" for k, n in self.changes().items())
        lines += [
            f"\nindex {'published' if self.published else 'unchanged'}: {counts}",
            f"  embedded {self.embedded} images, refreshed {self.refreshed} rows",
            f"  {self.rows} products in {len(self.categories)} categories",
        ]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} products whose image could not be loaded:")
            lines += [f"    {entry}" for entry in self.skipped]
        lines.append(f"  lucene {self.lucene} ({self.lucene_bytes} bytes)")
        if self.unlockable_categories:
            lines.append(f"  no vocabulary word locks: {', '.join(self.unlockable_categories)}")
        lines.append(f"  lance version {self.lance_version} ({self.lance_bytes} bytes)")
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics for MLflow."""
        counts = {k: v for k, v in asdict(self).items() if isinstance(v, int | bool | float)}
        counts["skipped"] = len(self.skipped)
        counts["repaired"] = len(self.repair.findings)
        counts["vectors_replaced"] = self.repair.vectors_replaced
        return {**counts, **{f"seconds_{k}": v for k, v in self.seconds.items()}}


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


def lance_bytes(uri: str) -> int:
    """Size of the LanceDB database, or 0 when it lives in an object store (not listed)."""
    return folder_bytes(Path(uri)) if is_local(uri) else 0


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
            build = PlannedBuild(
                plan=plan,
                catalogue=catalogue,
                catalogue_path=catalogue_path,
                cfg=cfg,
                table=table,
                embedder=embedder,
                published=manifest,
                embed=embed or embed_in_process(embedder),
                progress=progress,
                seconds=seconds,
            )
            embedded, skipped, manifest = apply_plan(build)
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
