"""Incremental re-index: only changed products are embedded, and searches never see half a build."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lancedb
import pytest
from PIL import Image
from support.catalogue_factory import (
    add_products,
    break_image,
    change_products,
    move_image,
    read_rows,
    remove_products,
)

from mars_core.funnel.stages import BM25, SIGLIP
from mars_core.index.lucene import HIT_COLUMNS
from mars_core.index.reindex import reindex
from mars_core.index.store import LANCE_DIR, LUCENE_DIR, IndexSnapshot, reindex_lock
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage
from mars_core.vision.embedder import Embedder

ROOM = Image.new("RGB", (32, 32), (128, 128, 128))
REINDEX_SCRIPT = """
import sys
from pathlib import Path
from mars_core.app.compose import load_config
from mars_core.vision.embedder import Embedder
from mars_core.index.reindex import reindex
cfg = load_config(sys.argv[2:])
embedder = Embedder.from_config(
    cfg.embedder, cfg.paths.models, max_image_pixels=cfg.data.max_image_pixels
)
reindex(Path(sys.argv[1]), cfg.index, embedder)
"""


class Searches:
    """Both stages opened on the index's current build, as a search service would."""

    def __init__(self, index_cfg, embedder) -> None:
        snapshot = IndexSnapshot.current(index_cfg.dir)
        self.snapshot = snapshot
        self.lexical = LexicalStage.open(snapshot, index_cfg, name=BM25)
        self.visual = VisualStage.open(snapshot, index_cfg, embedder, name=SIGLIP, text_weight=0.0)

    def keys(self, query: str) -> set[str]:
        """Every listing the index matches (the stage itself shows one listing per item)."""
        terms = self.lexical.index.analyze(query)
        return set(
            self.lexical.index.search(terms, category=None, k=10_000).products["key"].to_pylist()
        )

    def hashes(self) -> dict[str, str]:
        rows = self.visual.index.table.search().select(["key", "content_hash"]).limit(None)
        data = rows.to_arrow()
        return dict(zip(data["key"].to_pylist(), data["content_hash"].to_pylist(), strict=True))

    def nearest_key(self, image_path: str) -> str:
        out = self.visual.rank(SearchRequest(Image.open(image_path), "x"), None, 1)
        return out.candidates[0].key

    def close(self) -> None:
        self.lexical.close()


@pytest.fixture
def first_build(own_world, index_cfg, embedder, tmp_path):
    cfg = index_cfg(tmp_path / "index")
    report = reindex(own_world.catalogue, cfg, embedder)
    return cfg, report


def test_the_first_build_embeds_everything(first_build, own_world):
    cfg, report = first_build
    n = len(read_rows(own_world.catalogue))
    assert (report.added, report.changed, report.removed, report.unchanged) == (n, 0, 0, 0)
    assert report.embedded == n and report.rows == n and report.published
    assert report.unlockable_categories == []  # the vocabulary names every world category
    assert report.lucene_bytes > 0 and report.lance_bytes > 0
    snapshot = IndexSnapshot.current(cfg.dir)
    assert snapshot.manifest.rows == n and sum(snapshot.manifest.categories.values()) == n


def test_a_reindex_after_changing_5_products_embeds_exactly_5(first_build, own_world, embedder):
    cfg, _ = first_build
    rows = read_rows(own_world.catalogue)
    changed = [rows[i]["key"] for i in (3, 50, 101, 202, 299)]
    change_products(own_world.catalogue, changed)
    report = reindex(own_world.catalogue, cfg, embedder)
    assert report.embedded == 5
    assert (report.added, report.changed, report.removed) == (0, 5, 0)
    assert report.unchanged == len(rows) - 5
    searches = Searches(cfg, embedder)
    assert searches.keys("renewed") == set(changed)  # the new text is searchable
    new_rows = {r["key"]: r for r in read_rows(own_world.catalogue)}
    assert searches.nearest_key(new_rows[changed[0]]["image_path"]) == changed[0]
    assert all(searches.hashes()[k] == new_rows[k]["content_hash"] for k in changed)
    searches.close()


def test_added_changed_removed_unchanged_are_counted(first_build, own_world, embedder):
    cfg, _ = first_build
    rows = read_rows(own_world.catalogue)
    change_products(own_world.catalogue, [rows[i]["key"] for i in range(5)])
    remove_products(own_world.catalogue, [rows[10]["key"], rows[11]["key"]])
    add_products(own_world.catalogue, 3, seed=7)
    report = reindex(own_world.catalogue, cfg, embedder)
    assert (report.added, report.changed, report.removed) == (3, 5, 2)
    assert report.unchanged == len(rows) - 5 - 2 and report.embedded == 8
    searches = Searches(cfg, embedder)
    assert rows[10]["key"] not in searches.hashes()
    assert rows[10]["key"] not in searches.keys(rows[10]["category"].lower().replace("_", " "))
    assert len(searches.hashes()) == len(rows) + 1
    # Stage 2 re-ranks stage 1's candidates over the rewritten table (rows moved, some gone).
    new_rows = {r["key"]: r for r in read_rows(own_world.catalogue)}
    for key in (rows[0]["key"], rows[12]["key"], f"B07{0:08d}@amazon.com"):
        product = new_rows[key]
        request = SearchRequest(Image.open(product["image_path"]), product["category"].lower())
        candidates = searches.lexical.rank(request, None, 200).candidates
        top = searches.visual.rank(request, candidates, 3).candidates[0]
        assert top.key == key and top.product == {name: product[name] for name in HIT_COLUMNS}
    searches.close()


def test_a_moved_image_is_rewritten_without_embedding(first_build, own_world, embedder):
    """Same bytes at a new path: same content hash, no new vector, but no stale path either."""
    cfg, _ = first_build
    key = read_rows(own_world.catalogue)[33]["key"]
    moved = move_image(own_world.catalogue, key)
    report = reindex(own_world.catalogue, cfg, embedder)
    assert (report.embedded, report.refreshed, report.changed) == (0, 1, 0)
    assert report.published
    searches = Searches(cfg, embedder)
    out = searches.visual.rank(SearchRequest(Image.open(moved), "x"), None, 1)
    assert out.candidates[0].key == key and out.candidates[0].product["image_path"] == str(moved)
    searches.close()


def test_an_unchanged_catalogue_publishes_nothing(first_build, own_world, embedder):
    cfg, first = first_build
    report = reindex(own_world.catalogue, cfg, embedder)
    assert not report.published and report.embedded == 0
    assert report.unchanged == report.rows and report.lucene == first.lucene


def test_a_product_whose_image_cannot_be_loaded_is_skipped_not_fatal(
    first_build, own_world, embedder
):
    """A broken image among the changes leaves that product out of both indexes, reported by
    key and reason; the other changes are published, and the next run retries it."""
    cfg, first = first_build
    rows = read_rows(own_world.catalogue)
    changed = [rows[i]["key"] for i in (20, 40, 60, 80, 100)]
    gone = rows[5]
    change_products(own_world.catalogue, changed)
    broken = break_image(own_world.catalogue, changed[-1])
    remove_products(own_world.catalogue, [gone["key"]])
    renewed = {r["key"]: r for r in read_rows(own_world.catalogue)}
    before = Searches(cfg, embedder)
    old_hashes = before.hashes()

    small_batches = Embedder(
        embedder.loaded,
        name="b2",
        model_id=embedder.model_id,
        batch_size=2,
        max_image_pixels=10**6,
    )
    report = reindex(own_world.catalogue, dataclasses.replace(cfg, upsert_rows=2), small_batches)

    assert report.published and report.embedded == 4
    assert [entry.key for entry in report.skipped] == [changed[-1]]
    assert report.skipped[0].reason == "BadImageError" and broken.name in report.skipped[0].detail
    assert report.metrics()["skipped"] == 1
    assert report.rows == len(rows) - 2  # one removed, one skipped
    # The new build replaced the old one, without the broken product in either index.
    after = Searches(cfg, embedder)
    assert after.snapshot.manifest.lucene != first.lucene
    assert after.snapshot.manifest.rows == report.rows
    assert after.keys("renewed") == set(changed[:-1])
    assert changed[-1] not in after.hashes() and gone["key"] not in after.hashes()
    assert after.nearest_key(renewed[changed[0]]["image_path"]) == changed[0]
    # The reader opened before the re-index still answers from its own (old) build.
    assert before.keys("renewed") == set() and before.hashes() == old_hashes
    before.close()

    # Repaired, the next run retries it: its hash was never recorded as embedded.
    change_products(own_world.catalogue, [changed[-1]], tag="repaired")
    report = reindex(own_world.catalogue, cfg, embedder)
    assert report.embedded == 1 and report.skipped == []
    assert (report.added, report.changed, report.removed) == (1, 0, 0)
    assert Searches(cfg, embedder).keys("repaired") == {changed[-1]}


def test_a_reindex_killed_half_way_leaves_the_old_index_searchable(
    first_build, own_world, embedder, session_overrides
):
    """SIGKILL a re-index process once it has committed vectors; the old build still answers."""
    cfg, first = first_build
    rows = read_rows(own_world.catalogue)
    everything = [row["key"] for row in rows]
    change_products(own_world.catalogue, everything)
    overrides = [
        *session_overrides,
        f"index.dir={cfg.dir}",
        "index.upsert_rows=8",
        "embedder.batch_size=8",
    ]
    log = own_world.folder / "reindex.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", REINDEX_SCRIPT, str(own_world.catalogue), *overrides],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        table = lancedb.connect(str(Path(cfg.dir) / LANCE_DIR)).open_table(cfg.table)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            table.checkout_latest()
            if table.version > first.lance_version:  # a chunk of new vectors is committed
                break
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert table.version > first.lance_version, log.read_text()[-2000:]
    assert process.returncode == -signal.SIGKILL, "the re-index ended before it was killed"

    searches = Searches(cfg, embedder)
    assert searches.snapshot.manifest.lucene == first.lucene
    assert searches.keys("renewed") == set()
    assert searches.nearest_key(rows[0]["image_path"]) == rows[0]["key"]
    searches.close()

    with reindex_lock(Path(cfg.dir)):  # the killed process held the lock; it is free again
        pass
    report = reindex(own_world.catalogue, cfg, embedder)
    assert report.changed == len(rows) and 0 < report.embedded < len(rows)  # resumed
    assert Searches(cfg, embedder).keys("renewed") == set(everything)


def test_a_second_reindex_at_the_same_time_is_refused(first_build, own_world, embedder):
    cfg, _ = first_build
    with reindex_lock(Path(cfg.dir)), pytest.raises(RuntimeError, match="another re-index"):
        reindex(own_world.catalogue, cfg, embedder)


def test_old_lucene_builds_are_pruned(first_build, own_world, embedder):
    cfg, first = first_build
    rows = read_rows(own_world.catalogue)
    for i in range(3):
        change_products(own_world.catalogue, [rows[i]["key"]], tag=f"round{i}")
        last = reindex(own_world.catalogue, cfg, embedder)
    kept = sorted(p.name for p in (Path(cfg.dir) / LUCENE_DIR).iterdir())
    assert len(kept) == cfg.keep_lucene_versions and last.lucene in kept
    assert first.lucene not in kept


def test_vectors_of_another_embedder_are_refused(first_build, own_world, other_embedder):
    cfg, _ = first_build
    with pytest.raises(ValueError, match=r"index\.dir to another folder"):
        reindex(own_world.catalogue, cfg, other_embedder)


def test_a_bad_catalogue_is_named(tmp_path, index_cfg, embedder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "catalogue.parquet"
    pq.write_table(pa.table({"key": ["a"], "category": ["BED"]}), path)
    with pytest.raises(ValueError, match=r"lacks columns.*search_text"):
        reindex(path, index_cfg(tmp_path / "index"), embedder)
    with pytest.raises(FileNotFoundError, match="ingest"):
        reindex(tmp_path / "nope.parquet", index_cfg(tmp_path / "index"), embedder)
