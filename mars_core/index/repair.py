"""Repair what verify found broken, run by each re-index before it plans.

A broken manifest is replaced by the newest build whose own copy of its manifest still
verifies; a damaged LanceDB table is dropped (its rows are embedded again from the
catalogue); vectors that disagree with their image are embedded again; a broken Lucene build
is simply not reused (the re-index publishes a fresh one).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lancedb

from mars_core.config import IndexConfig
from mars_core.index.lance import PRODUCT_COLUMNS, VECTOR, VectorTable, with_vectors
from mars_core.index.store import (
    BUILD_FILE,
    LUCENE_DIR,
    MANIFEST_FILE,
    IndexManifest,
    is_local,
    lance_location,
    parse_manifest,
    read_manifest,
    write_json_atomic,
)
from mars_core.index.verify import LANCE, MANIFEST, VerifyReport, disagreeing, verify_manifest
from mars_core.infra.batching import batched
from mars_core.vision.embedder import ImageEmbedder

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What a re-index found broken before it planned, and what it did about it."""

    findings: list[dict[str, str]] = field(default_factory=list)  # {"part", "problem"}
    manifest_from: str = ""  # Lucene build whose manifest copy replaced a broken CURRENT.json
    table_dropped: bool = False  # the LanceDB table was damaged: its rows are embedded again
    vectors_replaced: int = 0  # stored vectors that disagreed with their image, replaced


def has_builds(root: Path) -> bool:
    """Whether anything was ever published here (else a first build, nothing to verify)."""
    folder = root / LUCENE_DIR
    return (root / MANIFEST_FILE).exists() or (
        folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())
    )


def last_good_manifest(root: Path, cfg: IndexConfig) -> IndexManifest | None:
    """The newest Lucene build whose manifest copy verifies (embedder aside), if any."""
    folder = root / LUCENE_DIR
    builds = sorted((p for p in folder.glob("*") if not p.name.startswith(".")), reverse=True)
    for build in builds:
        try:
            manifest = parse_manifest(build / BUILD_FILE)
        except (OSError, ValueError, TypeError):
            continue
        if manifest.lucene == build.name and verify_manifest(root, manifest, cfg, None).ok:
            return manifest
    return None


def drop_table(uri: str, name: str) -> None:
    """Remove a damaged LanceDB table; its folder goes too if the database cannot drop it."""
    try:
        lancedb.connect(uri).drop_table(name)
    except Exception:  # a damaged table may not even list
        log.warning("LanceDB could not drop table %s; removing its folder", name)
    if is_local(uri):
        shutil.rmtree(Path(uri) / f"{name}.lance", ignore_errors=True)


def replace_disagreeing_vectors(
    table: VectorTable, embedder: ImageEmbedder, cfg: IndexConfig
) -> int:
    """Embed every row's image again; upsert the rows whose stored vector disagrees.

    Rows are read from the version the repair starts at: each upsert moves rows, so reading
    the table being written would skip some and check others twice.
    """
    pinned = table.db.open_table(table.name)
    pinned.checkout(table.version)
    n = pinned.count_rows()
    replaced = 0
    for offsets in batched(range(n), cfg.upsert_rows):
        rows = pinned.take_offsets(list(offsets)).select([*PRODUCT_COLUMNS, VECTOR]).to_arrow()
        far, fresh, _ = disagreeing(rows, embedder, cfg.verify_tolerance)
        if far:
            table.upsert(with_vectors(rows.take(far), fresh))
            replaced += len(far)
    return replaced


def repair_before_reindex(
    root: Path, cfg: IndexConfig, report: VerifyReport
) -> tuple[IndexManifest | None, RepairReport]:
    """Fix what does not need the vector table open for writing: the manifest and a damaged
    table. Returns the manifest the re-index may trust as the published build (None: none)."""
    repair = RepairReport(findings=[asdict(f) for f in report.findings])
    manifest = None
    if report.broken(MANIFEST):
        manifest = last_good_manifest(root, cfg)
        if manifest is not None:
            write_json_atomic(root / MANIFEST_FILE, asdict(manifest))
            repair.manifest_from = manifest.lucene
            log.warning("%s rewritten from build %s", MANIFEST_FILE, manifest.lucene)
    else:
        manifest = read_manifest(root)
    if report.broken(LANCE):
        drop_table(lance_location(root, cfg.lance_uri), cfg.table)
        repair.table_dropped = True
        log.warning("LanceDB table %s was damaged and is dropped: rows embedded again", cfg.table)
    return manifest, repair
