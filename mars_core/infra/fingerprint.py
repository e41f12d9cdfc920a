"""Fingerprints of what a pipeline step reads: its input files and its config groups.

A step whose fingerprint is unchanged would compute the same artifacts again, so the pipeline
uses the fingerprint as the step's cache key. Files are hashed by content (a file rewritten
with the same bytes keeps its fingerprint; ingest and index never rewrite unchanged output),
folders too large to read (a raw ABO download) by their listing of names, sizes and mtimes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
MISSING = b"<missing>"


def fingerprint(
    *,
    files: Iterable[Path | str] = (),
    trees: Iterable[Path | str] = (),
    groups: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over the bytes of `files`, the listings of `trees` and the config `groups`."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        digest.update(f"file:{path}\n".encode())
        _hash_file(digest, path)
    for root in sorted(Path(p) for p in trees):
        digest.update(f"tree:{root}\n".encode())
        _hash_listing(digest, root)
    digest.update(_groups_json(groups or {}).encode())
    return digest.hexdigest()


def _hash_file(digest: Any, path: Path) -> None:
    if not path.is_file():
        digest.update(MISSING)
        return
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def _hash_listing(digest: Any, root: Path) -> None:
    if not root.is_dir():
        digest.update(MISSING)
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())


def _groups_json(groups: Mapping[str, Any]) -> str:
    plain = {name: asdict(v) if is_dataclass(v) else v for name, v in groups.items()}
    return json.dumps(plain, sort_keys=True, default=str)
