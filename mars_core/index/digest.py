"""The digests a publish records and verify compares: each Lucene file's size and checksum,
and one digest of a LanceDB version's rows (see `mars_core.index.store.IndexManifest`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mars_core.index.lance import ROW_HASH, VECTOR, vector_matrix
from mars_core.index.store import BUILD_FILE
from mars_core.infra.batching import batched

DIGEST_ROWS = 4096  # rows read per step when digesting a table version


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
    for offsets in batched(range(n), DIGEST_ROWS):
        rows = table.take_offsets(list(offsets)).select(["key", ROW_HASH, VECTOR]).to_arrow()
        digest.update("\n".join(rows["key"].to_pylist()).encode())
        digest.update("\n".join(rows[ROW_HASH].to_pylist()).encode())
        digest.update(vector_matrix(rows).tobytes())
    return digest.hexdigest()
