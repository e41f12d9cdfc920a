"""Check a published index against its manifest, part by part, and repair what is broken.

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

Repair, run by each re-index before it plans: a broken manifest is replaced by the newest
build whose own copy of its manifest still verifies; a damaged LanceDB table is dropped (its
rows are embedded again from the catalogue); vectors that disagree are embedded again; a
broken Lucene build is simply not reused (the re-index publishes a fresh one).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from mars_core.config import IndexConfig
from mars_core.embedder import ImageEmbedder
from mars_core.errors import IndexDamagedError, UserInputError, one_line
from mars_core.index.lance import (
    PRODUCT_COLUMNS,
    ROW_HASH,
    VECTOR,
    VectorTable,
    vector_matrix,
    with_vectors,
)
from mars_core.index.lucene import INDEX_DIR, PRODUCTS_FILE, read_products
from mars_core.index.store import (
    BUILD_FILE,
    LUCENE_DIR,
    MANIFEST_FILE,
    REPAIR_COMMAND,
    IndexManifest,
    IndexSnapshot,
    is_local,
    lance_location,
    parse_manifest,
    read_manifest,
    write_json_atomic,
)

log = logging.getLogger(__name__)

MANIFEST, LUCENE, LANCE_VERSION, LANCE, VECTORS = (
    "manifest",
    "lucene",
    "lance-version",
    "lance",
    "vectors",
)
VERIFY_COMMAND = f"{REPAIR_COMMAND} --verify"
DIGEST_ROWS = 4096  # rows read per step when digesting a table version


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

    def metrics(self) -> dict[str, float]:
        counts = ("files_checked", "rows_checked", "vectors_sampled")
        return {"findings": len(self.findings), **{k: getattr(self, k) for k in counts}}


@dataclass
class RepairReport:
    """What a re-index found broken before it planned, and what it did about it."""

    findings: list[dict[str, str]] = field(default_factory=list)  # {"part", "problem"}
    manifest_from: str = ""  # Lucene build whose manifest copy replaced a broken CURRENT.json
    table_dropped: bool = False  # the LanceDB table was damaged: its rows are embedded again
    vectors_replaced: int = 0  # stored vectors that disagreed with their image, replaced


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def record_files(build: Path) -> dict[str, list]:
    """relative path -> [size, checksum] of every file of a Lucene build (its manifest copy
    aside: it records them)."""
    return {
        str(path.relative_to(build)): [path.stat().st_size, file_digest(path)]
        for path in sorted(build.rglob("*"))
        if path.is_file() and path.name != BUILD_FILE
    }


def table_digest(table: Any) -> str:
    """A digest of every row's key, row hash and vector, in table order."""
    digest = hashlib.blake2b(digest_size=16)
    n = table.count_rows()
    for start in range(0, n, DIGEST_ROWS):
        offsets = list(range(start, min(n, start + DIGEST_ROWS)))
        rows = table.take_offsets(offsets).select(["key", ROW_HASH, VECTOR]).to_arrow()
        digest.update("\n".join(rows["key"].to_pylist()).encode())
        digest.update("\n".join(rows[ROW_HASH].to_pylist()).encode())
        digest.update(vector_matrix(rows).tobytes())
    return digest.hexdigest()


def check_lucene(root: Path, manifest: IndexManifest, *, checksums: bool) -> list[Finding]:
    """The build folder holds the recorded files, unchanged, and products.arrow its rows."""
    build = root / LUCENE_DIR / manifest.lucene
    if not build.is_dir():
        return [Finding(LUCENE, f"build folder {build} is missing")]
    missing = [name for name in (INDEX_DIR, PRODUCTS_FILE) if not (build / name).exists()]
    findings = [Finding(LUCENE, f"{build / name} is missing") for name in missing]
    for name, (size, digest) in manifest.lucene_files.items():
        path = build / name
        if Path(name).parts[0] in missing:
            continue
        if not path.is_file():
            findings.append(Finding(LUCENE, f"{path} is missing"))
            continue
        actual = path.stat().st_size
        if actual != size:
            findings.append(Finding(LUCENE, f"{path} has {actual} bytes, {size} at publish"))
        elif checksums and file_digest(path) != digest:
            findings.append(Finding(LUCENE, f"{path} differs from its checksum at publish"))
    if (build / PRODUCTS_FILE).is_file() and not findings:
        try:
            rows = read_products(build).num_rows
        except (OSError, pa.ArrowException) as e:
            return [Finding(LUCENE, f"{build / PRODUCTS_FILE} cannot be read ({one_line(e)})")]
        if rows != manifest.rows:
            findings.append(
                Finding(LUCENE, f"{build / PRODUCTS_FILE} has {rows} rows, {manifest.rows} built")
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


def embed_available(embedder: ImageEmbedder, paths: list[str]) -> tuple[list[int], np.ndarray]:
    """Positions of `paths` whose image loads, and their fresh vectors (in that order)."""
    bad: set[int] = set()
    chunks = list(embedder.iter_images(paths, progress=False, on_bad=lambda i, _: bad.add(i)))
    kept = [i for i in range(len(paths)) if i not in bad]
    matrix = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    return kept, matrix


def cosine_distances(stored: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, row by row."""
    norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1)
    return 1.0 - np.sum(stored * fresh, axis=1) / np.maximum(norms, np.finfo(np.float32).tiny)


def disagreeing(
    rows: pa.Table, embedder: ImageEmbedder, tolerance: float
) -> tuple[list[int], np.ndarray, int]:
    """Rows whose stored vector is further than `tolerance` from their image's fresh one:
    (their positions, their fresh vectors, how many rows could be compared)."""
    kept, fresh = embed_available(embedder, rows["image_path"].to_pylist())
    if not kept:
        return [], fresh, 0
    stored = vector_matrix(rows.take(kept))
    far = np.flatnonzero(cosine_distances(stored, fresh) > tolerance)
    return [kept[i] for i in far], fresh[far], len(kept)


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
    for start in range(0, n, cfg.upsert_rows):
        offsets = list(range(start, min(n, start + cfg.upsert_rows)))
        rows = pinned.take_offsets(offsets).select([*PRODUCT_COLUMNS, VECTOR]).to_arrow()
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


def published_content(root: Path, manifest: IndexManifest) -> dict[str, tuple[str, str]]:
    """key -> (content_hash, "") of the published build, read from its products.arrow
    (for the counts of a re-index whose LanceDB version is gone)."""
    try:
        products = read_products(root / LUCENE_DIR / manifest.lucene, ["key", "content_hash"])
    except (UserInputError, OSError, pa.ArrowException, KeyError):
        return {}
    pairs = zip(products["key"].to_pylist(), products["content_hash"].to_pylist(), strict=True)
    return {key: (content, "") for key, content in pairs}
