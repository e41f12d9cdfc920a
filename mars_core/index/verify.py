"""Check a published index against its manifest, part by part; nothing here changes data.

A disk, a crash or a stray command can break any part of an index folder (see
`mars_core.index.store`); searches must not trust it blindly and re-indexes must not report
"unchanged" over it. The parts and how each is checked:

* `manifest`      CURRENT.json parses as a manifest
* `lucene`        the build folder, each file's size and checksum recorded at publish,
                  products.arrow's row count
* `lance-version` the LanceDB version the manifest pins is still in the database
* `lance`         that version opens, holds the manifest's row count, and its rows match the
                  digest recorded at publish (garbage in data files changes them or fails them)
* `vectors`       a sample of stored vectors agrees with a fresh embedding of their images
                  (valid but wrong vectors pass every other check)

What each re-index repairs of it is `mars_core.index.repair`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from mars_core.config import IndexConfig
from mars_core.index.digest import file_digest, table_digest
from mars_core.index.lance import VECTOR, vector_matrix
from mars_core.index.lucene import INDEX_DIR, PRODUCTS_FILE, read_products
from mars_core.index.shards import embed_shard, shard_of
from mars_core.index.store import (
    LUCENE_DIR,
    MANIFEST_FILE,
    REPAIR_COMMAND,
    IndexManifest,
    IndexSnapshot,
    lance_location,
    read_manifest,
)
from mars_core.infra.errors import IndexDamagedError, one_line
from mars_core.vision.embedder import ImageEmbedder

MANIFEST, LUCENE, LANCE_VERSION, LANCE, VECTORS = (
    "manifest",
    "lucene",
    "lance-version",
    "lance",
    "vectors",
)
VERIFY_COMMAND = f"{REPAIR_COMMAND} --verify"


@dataclass(frozen=True)
class Finding:
    """One broken part and what is wrong with it."""

    part: str
    problem: str

    def line(self) -> str:
        return f"{self.part}: {self.problem}"


@dataclass
class VerifyReport:
    """What `verify_index` checked and found (no findings: the index is sound)."""

    root: str
    lucene: str = ""
    lance_version: int = 0
    files_checked: int = 0
    rows_checked: int = 0
    vectors_sampled: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def broken(self, *parts: str) -> bool:
        return any(f.part in parts for f in self.findings)

    def error(self) -> IndexDamagedError:
        """One line naming the first broken part and the repair command."""
        more = f" (and {len(self.findings) - 1} more problems)" if len(self.findings) > 1 else ""
        return IndexDamagedError(
            f"index {self.root} is damaged: {self.findings[0].line()}{more}; "
            f"repair it with `{REPAIR_COMMAND}`"
        )

    def summary(self) -> str:
        """What `--verify` prints: each broken part, or what was checked and found sound."""
        if not self.ok:
            return "\n".join(f"broken {finding.line()}" for finding in self.findings)
        return (
            f"index ok: build {self.lucene}, lance version {self.lance_version}, "
            f"{self.files_checked} files, {self.rows_checked} rows, "
            f"{self.vectors_sampled} vectors embedded again and compared"
        )

    def metrics(self) -> dict[str, float]:
        counts = ("files_checked", "rows_checked", "vectors_sampled")
        return {"findings": len(self.findings), **{k: getattr(self, k) for k in counts}}


def check_lucene(root: Path, manifest: IndexManifest, *, checksums: bool) -> list[Finding]:
    """The build folder holds the recorded files, unchanged, and products.arrow its rows.
    Paths are named relative to `root`, which the damage message names first: a long index
    path then cannot push the build's own name out of a shortened quote."""
    build = root / LUCENE_DIR / manifest.lucene
    shown = Path(LUCENE_DIR) / manifest.lucene
    if not build.is_dir():
        return [Finding(LUCENE, f"build folder {shown} is missing")]
    missing = [name for name in (INDEX_DIR, PRODUCTS_FILE) if not (build / name).exists()]
    findings = [Finding(LUCENE, f"{shown / name} is missing") for name in missing]
    for name, (size, digest) in manifest.lucene_files.items():
        path = build / name
        if Path(name).parts[0] in missing:
            continue
        if not path.is_file():
            findings.append(Finding(LUCENE, f"{shown / name} is missing"))
            continue
        actual = path.stat().st_size
        if actual != size:
            findings.append(
                Finding(LUCENE, f"{shown / name} has {actual} bytes, {size} at publish")
            )
        elif checksums and file_digest(path) != digest:
            findings.append(Finding(LUCENE, f"{shown / name} differs from its checksum at publish"))
    if (build / PRODUCTS_FILE).is_file() and not findings:
        try:
            rows = read_products(build).num_rows
        except (OSError, pa.ArrowException) as e:
            return [Finding(LUCENE, f"{shown / PRODUCTS_FILE} cannot be read ({one_line(e)})")]
        if rows != manifest.rows:
            findings.append(
                Finding(LUCENE, f"{shown / PRODUCTS_FILE} has {rows} rows, {manifest.rows} built")
            )
    return findings


def open_version(root: Path, manifest: IndexManifest) -> tuple[Any, list[Finding]]:
    """The LanceDB table checked out at the manifest's version, or the finding why not."""
    uri = lance_location(root, manifest.lance_uri)
    try:
        db = lancedb.connect(uri)
        if manifest.table not in db.list_tables().tables:
            return None, [Finding(LANCE, f"table {manifest.table} is missing from {uri}")]
        table = db.open_table(manifest.table)
        versions = [int(v["version"]) for v in table.list_versions()]
    except Exception as e:  # a damaged database raises whatever its reader hits
        return None, [Finding(LANCE, f"table {manifest.table} cannot be opened ({one_line(e)})")]
    if manifest.lance_version not in versions:
        held = f"{min(versions)}..{max(versions)}" if versions else "none"
        problem = (
            f"version {manifest.lance_version} of table {manifest.table} is not in {uri} "
            f"(it holds versions {held})"
        )
        return None, [Finding(LANCE_VERSION, problem)]
    try:
        table.checkout(manifest.lance_version)
    except Exception as e:  # as above
        problem = f"version {manifest.lance_version} cannot be opened ({one_line(e)})"
        return None, [Finding(LANCE, problem)]
    return table, []


def check_lance(table: Any, manifest: IndexManifest, *, digest: bool) -> list[Finding]:
    """The pinned version holds the built rows, unchanged since publish."""
    version = f"version {manifest.lance_version} of table {manifest.table}"
    try:
        rows = table.count_rows()
        if rows != manifest.rows:
            return [Finding(LANCE, f"{version} has {rows} rows, {manifest.rows} built")]
        if digest and manifest.lance_digest and table_digest(table) != manifest.lance_digest:
            return [Finding(LANCE, f"the rows of {version} differ from their digest at publish")]
    except Exception as e:  # garbage in data files fails in many ways
        return [Finding(LANCE, f"{version} cannot be read ({one_line(e)})")]
    return []


def cosine_distances(stored: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, row by row."""
    norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1)
    return 1.0 - np.sum(stored * fresh, axis=1) / np.maximum(norms, np.finfo(np.float32).tiny)


def disagreeing(
    rows: pa.Table, embedder: ImageEmbedder, tolerance: float
) -> tuple[list[int], np.ndarray, int]:
    """Rows whose stored vector is further than `tolerance` from their image's fresh one:
    (their positions, their fresh vectors, how many rows could be compared)."""
    fresh = embed_shard(shard_of(rows, list(range(rows.num_rows))), embedder)
    if not fresh.rows:
        return [], fresh.vectors, 0
    stored = vector_matrix(rows.take(fresh.rows))
    far = np.flatnonzero(cosine_distances(stored, fresh.vectors) > tolerance)
    return [fresh.rows[i] for i in far], fresh.vectors[far], len(fresh.rows)


def sample_offsets(n: int, sample: int) -> list[int]:
    """Up to `sample` offsets spread evenly over `n` rows (first and last included)."""
    if n == 0 or sample == 0:
        return []
    return sorted({int(i) for i in np.linspace(0, n - 1, min(sample, n))})


def check_vectors(
    table: Any, embedder: ImageEmbedder, cfg: IndexConfig
) -> tuple[list[Finding], int]:
    """Embed a sample of the version's images again; stored vectors must agree."""
    offsets = sample_offsets(table.count_rows(), cfg.verify_sample)
    if not offsets:
        return [], 0
    rows = table.take_offsets(offsets).select(["key", "image_path", VECTOR]).to_arrow()
    far, _, compared = disagreeing(rows, embedder, cfg.verify_tolerance)
    if not far:
        return [], compared
    first = rows["key"][far[0]].as_py()
    problem = (
        f"{len(far)} of {compared} sampled vectors disagree with a fresh embedding of their "
        f"image (first: {first}; tolerance index.verify_tolerance={cfg.verify_tolerance})"
    )
    return [Finding(VECTORS, problem)], compared


def verify_manifest(
    root: Path,
    manifest: IndexManifest,
    cfg: IndexConfig,
    embedder: ImageEmbedder | None,
) -> VerifyReport:
    """Every part of the build `manifest` names; vectors only with an embedder."""
    report = VerifyReport(str(root), manifest.lucene, manifest.lance_version)
    report.findings += check_lucene(root, manifest, checksums=True)
    report.files_checked = len(manifest.lucene_files)
    table, findings = open_version(root, manifest)
    report.findings += findings
    if table is None:
        return report
    report.findings += check_lance(table, manifest, digest=True)
    report.rows_checked = manifest.rows
    if embedder is not None and not report.broken(LANCE):
        if manifest.embedder != embedder.model_id:
            problem = f"built with embedder {manifest.embedder}, not {embedder.model_id}"
            report.findings.append(Finding(VECTORS, problem))
            return report
        found, report.vectors_sampled = check_vectors(table, embedder, cfg)
        report.findings += found
    return report


def verify_index(root: Path, cfg: IndexConfig, embedder: ImageEmbedder | None) -> VerifyReport:
    """Check the published index in `root` against its manifest (see the module docstring)."""
    try:
        manifest = read_manifest(root)
    except IndexDamagedError as e:
        problem = f"{root / MANIFEST_FILE} cannot be read ({one_line(e.__cause__ or e)})"
        return VerifyReport(str(root), findings=[Finding(MANIFEST, problem)])
    if manifest is None:
        problem = f"no {MANIFEST_FILE} in {root}: build the index with `{REPAIR_COMMAND}`"
        return VerifyReport(str(root), findings=[Finding(MANIFEST, problem)])
    return verify_manifest(root, manifest, cfg, embedder)


def check_openable(snapshot: IndexSnapshot, *, digest: bool = False) -> None:
    """The checks a search runs before opening a build: files there at their sizes, the
    LanceDB version present, and with `digest` the build's files (stage 2's vectors among
    them) against their checksums and the table's rows against their digest, all recorded at
    publish (wrong vectors otherwise reverse rankings silently, garbage in data files fails
    only mid-query). A broken part ends in one line naming it and the repair command."""
    report = VerifyReport(str(snapshot.root), snapshot.manifest.lucene)
    report.findings += check_lucene(snapshot.root, snapshot.manifest, checksums=digest)
    table, findings = open_version(snapshot.root, snapshot.manifest)
    report.findings += findings
    if table is not None:
        report.findings += check_lance(table, snapshot.manifest, digest=digest)
    if report.findings:
        raise report.error()


def damaged_part_error(snapshot: IndexSnapshot, part: str, error: Exception) -> IndexDamagedError:
    """A part of a build that passed the quick checks but failed to open or read."""
    return IndexDamagedError(
        f"index {snapshot.root} is damaged: {part} cannot be read ({one_line(error)}); "
        f"check it with `{VERIFY_COMMAND}`, repair it with `{REPAIR_COMMAND}`"
    )
