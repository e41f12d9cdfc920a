"""Writes that never leave a half-written file: write beside the target, flush it to disk,
rename, then flush the folder, so a crash or power loss after the rename keeps the new file.

Published files and folders get the modes a plain `open`/`mkdir` gives (0666/0777 less the
umask), not `tempfile`'s private 0600/0700: a search service running as another user must
be able to read an index, a catalogue or a report.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mars_core.infra.runtime import process_alive

FILE_MODE = 0o666  # before the umask, as open() creates files
FOLDER_MODE = 0o777  # before the umask, as mkdir() creates folders
_NAME_ATTEMPTS = 100


def _temp_beside(path: Path) -> Path:
    """A new empty file `.<name>.<random>.tmp` beside `path`, mode 0666 less the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_NAME_ATTEMPTS):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


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


def staging_folder(parent: Path, prefix: str) -> Path:
    """A new folder `<prefix><pid>-<random>` in `parent` (mode 0777 less the umask) to build
    into and rename into place. The pid in its name lets `remove_stale_staging` tell a
    folder left by a killed process from one still being written."""
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_NAME_ATTEMPTS):
        folder = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            folder.mkdir(FOLDER_MODE)
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free staging folder name in {parent}")


def remove_stale_staging(parent: Path, prefix: str) -> list[Path]:
    """Delete the `staging_folder`s in `parent` whose process is gone (killed mid-build);
    a folder of a live process, or one not named by `staging_folder`, is left alone."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)-[0-9a-f]+")
    stale = [
        entry
        for entry in (parent.iterdir() if parent.is_dir() else [])
        if (match := pattern.fullmatch(entry.name)) and not process_alive(int(match[1]))
    ]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale
