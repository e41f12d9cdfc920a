"""Writes that never leave a half-written file: write beside the target, flush it to disk,
rename, then flush the folder, so a crash or power loss after the rename keeps the new file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def fsync_path(path: Path) -> None:
    """Flush one file's or folder's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` (and `root` itself) to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def _replace_durably(tmp: Path, path: Path) -> None:
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> Path:
    tmp = _temp_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        _replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_parquet(path: Path, table: pa.Table) -> Path:
    tmp = _temp_beside(path)
    try:
        pq.write_table(table, tmp)
        _replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
