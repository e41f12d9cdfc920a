"""Get the ABO files: use a local folder, or download the archives and extract them safely.

Downloads resume: bytes land in `<archive>.part`, a re-run asks the server for the rest
(`Range`), and the file is renamed into place only once its size matches what the server
(and, if set, `data.archive_sizes`) says. Extraction refuses any member that would land
outside the target folder (absolute paths, `..`, links, devices) before writing anything,
unpacks into a staging folder and moves the result into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from mars_core.catalogue.abo import AboLayout
from mars_core.config import DataConfig

log = logging.getLogger(__name__)

CHUNK = 1 << 20
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
DONE_DIR = ".acquired"  # under the extraction target: one marker per extracted archive


class DownloadError(RuntimeError):
    """A download that cannot complete as asked; the .part file is kept for a resume."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder (or is a link/device)."""


def remote_size(url: str, timeout: float) -> int | None:
    """The size the server announces for `url` (HEAD), or None if it does not say."""
    try:
        with urlopen(Request(url, method="HEAD"), timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except HTTPError as error:
        if error.code in (405, 501):  # HEAD not allowed: learn the size from the GET
            return None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    return int(length) if length and length.isdigit() else None


def _resume_offset(response, have: int, url: str) -> int:
    """Where the response body starts: `have` for a 206 that honours the range, else 0."""
    if not have or response.status != 206:
        return 0
    match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if not match or int(match.group(1)) != have:
        raise DownloadError(f"{url}: server answered range {have}- with {match and match.group(0)}")
    return have


def _fetch(url: str, part: Path, total: int | None, timeout: float) -> None:
    """Append the missing bytes of `url` to `part` (or rewrite it if the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with urlopen(Request(url, headers=headers), timeout=timeout) as response:
        offset = _resume_offset(response, have, url)
        length = response.headers.get("Content-Length")
        if total is None and length and length.isdigit():
            total = offset + int(length)
        with (
            part.open("ab" if offset else "wb") as out,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.stem) as bar,
        ):
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def download(
    url: str, dest: Path, *, expected_size: int | None = None, timeout: float = 60.0
) -> Path:
    """`url` saved at `dest`, resuming `dest.part`; DownloadError on a size mismatch."""
    dest = Path(dest)
    if dest.is_file():
        size = dest.stat().st_size
        if expected_size is None or size == expected_size:
            return dest
        raise DownloadError(
            f"{dest} has {size} bytes but {expected_size} are expected: delete it to download again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total = remote_size(url, timeout)
    if expected_size is not None and total is not None and total != expected_size:
        raise DownloadError(
            f"{url} is {total} bytes but data.archive_sizes says {expected_size}: "
            "fix the size in the config or the URL"
        )
    total = total if total is not None else expected_size
    if total is not None and part.exists() and part.stat().st_size > total:
        part.unlink()
    if total is None or not part.exists() or part.stat().st_size < total:
        _fetch(url, part, total, timeout)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: got {size} of {total} bytes; run again to resume")
    os.replace(part, dest)
    return dest


def check_member(member: tarfile.TarInfo, target: Path, archive: str) -> None:
    """Raise UnsafeArchiveError unless `member` is a file or folder that stays in `target`."""
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a link or special file; only files and "
            "folders are extracted"
        )
    path = Path(member.name)
    inside = (target / path).resolve()
    if path.is_absolute() or ".." in path.parts or not inside.is_relative_to(target):
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} would be written outside {target}"
        )


def _move_into(staging: Path, target: Path) -> None:
    """Move each top-level entry of `staging` into `target`, replacing an older copy."""
    for entry in sorted(staging.iterdir()):
        destination = target / entry.name
        if destination.is_dir() and entry.is_dir():
            old = target / f".{entry.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            destination.rename(old)
            entry.rename(destination)
            shutil.rmtree(old)
        else:
            os.replace(entry, destination)


def safe_extract(archive: Path, target: Path) -> int:
    """Extract a tar archive into `target` after checking every member; the member count."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    staging = target / f".extracting-{archive.name}"
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, target, archive.name)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for member in tqdm(members, desc=f"extract {archive.name}", unit=" files"):
            tar.extract(member, staging, filter="data")
    _move_into(staging, target)
    staging.rmdir()
    return len(members)


def _marker(target: Path, archive: Path) -> Path:
    return target / DONE_DIR / f"{archive.name}.json"


def extract_once(archive: Path, target: Path) -> None:
    """Extract unless this very archive (same size and mtime) was extracted here before."""
    stat = archive.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = _marker(target, archive)
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        log.info("%s already extracted into %s", archive.name, target)
        return
    count = safe_extract(archive, target)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp))
    log.info("extracted %d members of %s into %s", count, archive.name, target)


def acquire_abo(data: DataConfig) -> Path:
    """The ABO layout folder: `data.raw_dir` as is (local) or after download + extraction."""
    raw = Path(data.raw_dir)
    if data.acquire == "download":
        downloads = Path(data.download_dir or raw / "downloads")
        for name in data.archives:
            url = f"{data.base_url.rstrip('/')}/{name}"
            archive = download(url, downloads / name, expected_size=data.archive_sizes.get(name))
            extract_once(archive, raw)
    return AboLayout.find(raw).root
