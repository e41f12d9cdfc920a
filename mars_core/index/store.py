"""The index folder and its manifest: what "the current index" is, swapped atomically.

```
<index.dir>/
  CURRENT.json          the manifest: which Lucene build and which LanceDB table version
  lucene/<build>/       one immutable build: index/ (Lucene), products.arrow, vectors.npy
                        (stage 2's vectors, row i = document i) and build.json (a copy of
                        the manifest that published it: the last good build's manifest
                        survives a damaged CURRENT.json)
  lance/                the LanceDB database (its tables keep every version until cleaned)
  embedder.json         which embedder the vectors come from
  readers/              one lease file per open reader of a build: <build>.<pid>.<id>
  .reindex.lock         held while a re-index runs
```

A re-index writes a new Lucene folder and new LanceDB versions, none of which a reader sees,
flushes all of it to disk, then replaces `CURRENT.json` with `os.replace`. The manifest
records each Lucene file's size and checksum and a digest of the LanceDB version's rows, so
`mars_core.index.verify` can tell a damaged part from a good one. Readers resolve the
manifest once, at open time, and pin both indexes to it: while a re-index runs, and after
one fails half-way, searches answer from the last complete build. A long-lived reader (the
search service) leases the build it has open, and pruning spares every leased build whose
reader's process is alive: a server that still answers from the previous build keeps its
folder until it lets go.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from uuid import uuid4

from mars_core.infra.errors import IndexDamagedError, IndexNotBuiltError
from mars_core.infra.io import atomic_write_text, fsync_path, fsync_tree
from mars_core.infra.runtime import process_alive

MANIFEST_FILE = "CURRENT.json"
LUCENE_DIR = "lucene"
LANCE_DIR = "lance"
EMBEDDER_FILE = "embedder.json"
LOCK_FILE = ".reindex.lock"
READERS_DIR = "readers"  # reader leases: <build>.<pid>.<id>, one per open reader
BUILD_FILE = "build.json"  # the manifest's copy inside its Lucene build folder
REPAIR_COMMAND = "python -m flows.index"


@dataclass(frozen=True)
class IndexManifest:
    """One complete build: both indexes, pinned, and what they were built from."""

    lucene: str  # folder name under lucene/
    lance_version: int
    table: str
    rows: int
    embedder: str  # model id of the embedder the vectors come from
    dim: int
    categories: dict[str, int] = field(default_factory=dict)  # category -> products
    catalogue: str = ""
    built_at: str = ""
    # the build's vector file, aligned with its documents; "" in builds made before it existed
    vectors: str = ""
    # relative path under the Lucene build -> [size in bytes, blake2b hex digest]
    lucene_files: dict[str, list] = field(default_factory=dict)
    lance_digest: str = ""  # digest of the LanceDB version's rows (see digest.table_digest)
    lance_uri: str = ""  # where the LanceDB database is (index.lance_uri); "" = <index.dir>/lance


@dataclass(frozen=True)
class IndexSnapshot:
    """The current build of an index folder, resolved once."""

    root: Path
    manifest: IndexManifest

    @classmethod
    def current(cls, root: Path | str) -> IndexSnapshot:
        root = Path(root)
        manifest = read_manifest(root)
        if manifest is None:
            raise IndexNotBuiltError(
                f"no index at {root} (no {MANIFEST_FILE}): build it with `python -m flows.index`"
            )
        return cls(root, manifest)

    @property
    def lucene_path(self) -> Path:
        return self.root / LUCENE_DIR / self.manifest.lucene

    @property
    def has_vectors(self) -> bool:
        """Whether the build carries stage 2's aligned vectors (older builds do not)."""
        return bool(self.manifest.vectors) and (self.lucene_path / self.manifest.vectors).is_file()

    @property
    def lance_uri(self) -> str:
        return lance_location(self.root, self.manifest.lance_uri)


def lance_location(root: Path, uri: str) -> str:
    """The LanceDB database of the index at `root`: `uri` when set (an object store such as
    s3://bucket/prefix, credentials from the environment as LanceDB reads them), else the
    folder `lance/` beside the Lucene builds."""
    return uri or str(root / LANCE_DIR)


def is_local(uri: str) -> bool:
    """Whether a LanceDB URI is a path on this machine (its files can be sized and synced)."""
    return urlparse(uri).scheme in ("", "file")


def read_manifest(root: Path) -> IndexManifest | None:
    """The published manifest; None before the first build. A manifest that is there but
    cannot be read (empty, truncated, not a manifest) raises `IndexDamagedError`."""
    path = root / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return parse_manifest(path)
    except (OSError, ValueError, TypeError) as e:
        raise IndexDamagedError(
            f"index {root} is damaged: manifest {path} cannot be read ({e}); "
            f"repair it with `{REPAIR_COMMAND}`"
        ) from e


def parse_manifest(path: Path) -> IndexManifest:
    """A manifest file (CURRENT.json or a build's copy); ValueError or TypeError if not one."""
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    return IndexManifest(**payload)


def write_json_atomic(path: Path, payload: dict) -> None:
    """A reader sees the old file or the new one, never half (see mars_core.infra.io)."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True))


def publish(root: Path, manifest: IndexManifest, *, keep_lucene: int) -> None:
    """Make `manifest` the current build, then drop Lucene folders no reader will open.

    Its Lucene build (with the manifest's copy) and the LanceDB files reach the disk before
    the swap, so a power loss cannot leave a manifest naming files that were never written.
    """
    build = root / LUCENE_DIR / manifest.lucene
    write_json_atomic(build / BUILD_FILE, asdict(manifest))
    fsync_tree(build)
    fsync_path(build.parent)  # the build folder's name
    lance = lance_location(root, manifest.lance_uri)
    if is_local(lance):
        fsync_tree(Path(lance))
    write_json_atomic(root / MANIFEST_FILE, asdict(manifest))
    prune_lucene(root, manifest.lucene, keep=keep_lucene)


def prune_lucene(root: Path, current: str, *, keep: int) -> list[str]:
    """Delete all but the current and the newest `keep - 1` other Lucene folders.

    Runs under the re-index lock, so leftover `.tmp-*` folders are from crashed builds. A
    build a live reader has leased (`lease_build`) is kept whatever its age: the reader may
    still open files in it (Lucene reads segments lazily).
    """
    folder = root / LUCENE_DIR
    if not folder.is_dir():
        return []
    builds = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    others = [name for name in builds if name != current]  # names sort by build time
    keep_names = {current, *others[max(0, len(others) - (keep - 1)) :], *leased_builds(root)}
    removed = [p for p in folder.iterdir() if p.name not in keep_names]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in removed]


@dataclass(frozen=True)
class ReaderLease:
    """A reader's claim on a build folder: `prune_lucene` keeps the build while it exists."""

    path: Path

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def lease_build(root: Path, build: str) -> ReaderLease:
    """Claim `build` for this process until `release` (or the process's death: a lease whose
    pid is gone is ignored and removed by the next prune). Pids are this machine's: readers
    on other machines sharing the folder are not seen."""
    folder = root / READERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{build}.{os.getpid()}.{uuid4().hex[:8]}"
    path.touch()
    return ReaderLease(path)


def leased_builds(root: Path) -> set[str]:
    """Builds a live reader holds; the leases of dead processes are removed on the way."""
    folder = root / READERS_DIR
    if not folder.is_dir():
        return set()
    held = set()
    for lease in folder.iterdir():
        build, _, rest = lease.name.partition(".")
        pid = rest.partition(".")[0]
        if pid.isdigit() and process_alive(int(pid)):
            held.add(build)
        else:
            lease.unlink(missing_ok=True)
    return held


@contextmanager
def reindex_lock(root: Path) -> Iterator[None]:
    """Hold the index folder's lock; a second re-index fails at once instead of interleaving."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise RuntimeError(f"another re-index is running on {root}; wait for it") from e
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def folder_bytes(path: Path) -> int:
    """Size on disk of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
