"""Reader leases: pruning never deletes a build a live reader holds, and forgets dead ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mars_core.index.store import (
    LUCENE_DIR,
    READERS_DIR,
    lease_build,
    leased_builds,
    prune_lucene,
)

BUILDS = [f"2026010{day}T000000000000-{tag * 6}" for day, tag in ((1, "a"), (2, "b"), (3, "c"))]


def make_builds(root: Path) -> None:
    for name in BUILDS:
        (root / LUCENE_DIR / name).mkdir(parents=True)


def dead_pid() -> int:
    """The pid of a process that has finished (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_leased_build_outlives_pruning_until_released(tmp_path):
    make_builds(tmp_path)
    oldest, _, current = BUILDS
    lease = lease_build(tmp_path, oldest)
    assert leased_builds(tmp_path) == {oldest}
    assert prune_lucene(tmp_path, current, keep=1) == [BUILDS[1]]
    assert (tmp_path / LUCENE_DIR / oldest).is_dir()
    lease.release()
    assert leased_builds(tmp_path) == set()
    assert prune_lucene(tmp_path, current, keep=1) == [oldest]


def test_the_lease_of_a_dead_reader_is_ignored_and_removed(tmp_path):
    make_builds(tmp_path)
    oldest, _, current = BUILDS
    stale = tmp_path / READERS_DIR / f"{oldest}.{dead_pid()}.0000"
    stale.parent.mkdir()
    stale.touch()
    (tmp_path / READERS_DIR / "not-a-lease").touch()
    assert leased_builds(tmp_path) == set()
    assert not any((tmp_path / READERS_DIR).iterdir())
    assert sorted(prune_lucene(tmp_path, current, keep=1)) == BUILDS[:2]
