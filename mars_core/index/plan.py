"""What a re-index changes: the catalogue, checked, diffed against the published build (for
the counts) and against the vector table's latest state (for the work), and the guard that
stops a re-index from removing too much of the live index.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.catalogue.changes import KeyChanges, diff_hashes, key_hashes
from mars_core.catalogue.schema import CATALOGUE_SCHEMA, QUARANTINE_FILE
from mars_core.catalogue.tables import read_table
from mars_core.config import IndexConfig
from mars_core.index.lance import VectorTable, row_hashes
from mars_core.index.lucene import read_products
from mars_core.index.store import LUCENE_DIR, IndexManifest, read_manifest
from mars_core.index.verify import LANCE, LANCE_VERSION, VerifyReport
from mars_core.infra.errors import RemovalGuardError, UserInputError


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


def published_content(root: Path, manifest: IndexManifest) -> dict[str, tuple[str, str]]:
    """key -> (content_hash, "") of the published build, read from its products.arrow
    (for the counts of a re-index whose LanceDB version is gone)."""
    try:
        products = read_products(root / LUCENE_DIR / manifest.lucene, ["key", "content_hash"])
    except (UserInputError, OSError, pa.ArrowException, KeyError):
        return {}
    pairs = zip(products["key"].to_pylist(), products["content_hash"].to_pylist(), strict=True)
    return {key: (content, "") for key, content in pairs}


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
