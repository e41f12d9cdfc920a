"""An index that repairs itself, and a re-index that removes nothing by accident.

Each corruption a disk or a stray command can cause is named by verify, repaired by the next
re-index, and searched correctly afterwards. Every test damages a copy of the session's built
index: nothing is built from scratch here.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.catalogue_factory import read_rows, remove_products

from mars_core.catalogue.schema import QUARANTINE_FILE, QUARANTINE_SCHEMA
from mars_core.funnel.stages import BM25, SIGLIP, build_funnel
from mars_core.index.digest import table_digest
from mars_core.index.lance import VECTOR, vector_matrix
from mars_core.index.lucene import PRODUCTS_FILE
from mars_core.index.reindex import reindex
from mars_core.index.store import LANCE_DIR, LUCENE_DIR, MANIFEST_FILE, IndexSnapshot
from mars_core.index.vectors import VECTORS_FILE
from mars_core.index.verify import verify_index
from mars_core.infra.errors import IndexDamagedError, RemovalGuardError
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage


def manifest_of(root: Path) -> dict:
    return json.loads((root / MANIFEST_FILE).read_text())


def delete_lucene_build(root: Path) -> None:
    shutil.rmtree(root / LUCENE_DIR / manifest_of(root)["lucene"])


def delete_products(root: Path) -> None:
    (root / LUCENE_DIR / manifest_of(root)["lucene"] / PRODUCTS_FILE).unlink()


def truncate_manifest(root: Path) -> None:
    text = (root / MANIFEST_FILE).read_text()
    (root / MANIFEST_FILE).write_text(text[: len(text) // 2])


def empty_manifest(root: Path) -> None:
    (root / MANIFEST_FILE).write_text("")


def point_at_a_missing_version(root: Path) -> None:
    manifest = manifest_of(root)
    (root / MANIFEST_FILE).write_text(json.dumps({**manifest, "lance_version": 999}))


def garbage_into_lance_data(root: Path) -> None:
    """Random bytes over the middle of every data file (sizes unchanged), as a bad disk."""
    rng = np.random.default_rng(0)
    files = sorted((root / LANCE_DIR).rglob("data/*.lance"))
    assert files
    for path in files:
        data = bytearray(path.read_bytes())
        start, end = len(data) // 4, 3 * len(data) // 4
        data[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))


def publish_wrong_vectors(root: Path) -> None:
    """A buggy writer: every product gets its neighbour's vector (valid unit vectors), and the
    manifest, with a fresh digest, is published over them; only re-embedding can tell."""
    manifest = manifest_of(root)
    table = lancedb.connect(str(root / LANCE_DIR)).open_table(manifest["table"])
    rows = table.to_arrow()
    vectors = np.roll(vector_matrix(rows), 1, axis=0)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
    wrong = rows.set_column(rows.schema.get_field_index(VECTOR), VECTOR, column)
    table.merge_insert("key").when_matched_update_all().execute(wrong)
    published = {**manifest, "lance_version": table.version, "lance_digest": table_digest(table)}
    (root / MANIFEST_FILE).write_text(json.dumps(published))


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "lucene build deleted": (delete_lucene_build, "lucene"),
    "products.arrow deleted": (delete_products, "lucene"),
    "CURRENT.json truncated": (truncate_manifest, "manifest"),
    "CURRENT.json empty": (empty_manifest, "manifest"),
    "missing LanceDB version": (point_at_a_missing_version, "lance-version"),
    "garbage in LanceDB data": (garbage_into_lance_data, "lance"),
    "wrong vectors": (publish_wrong_vectors, "vectors"),
}


@pytest.fixture
def copied(built, index_cfg, tmp_path):
    """A copy of the session's built index, to damage."""
    shutil.copytree(built.cfg.dir, tmp_path / "index")
    return index_cfg(tmp_path / "index")


def searches_right(cfg, embedder, catalogue: Path) -> None:
    """Stage 1 finds products by their own text; stage 2 puts each image's product first."""
    snapshot = IndexSnapshot.current(cfg.dir)
    lexical = LexicalStage.open(snapshot, cfg, name=BM25)
    visual = VisualStage.open(snapshot, cfg, embedder, name=SIGLIP, text_weight=0.0)
    rows = read_rows(catalogue)
    shared = Counter(row["image_path"] for row in rows)  # listings of one item share images
    try:
        assert lexical.index.num_docs == snapshot.manifest.rows
        for row in [row for row in rows if shared[row["image_path"]] == 1][::40]:
            terms = lexical.index.analyze(row["search_text"])
            hits = lexical.index.search(terms, category=row["category"], k=5)
            assert row["key"] in hits.products["key"].to_pylist()
            request = SearchRequest(Image.open(row["image_path"]), "x")
            assert visual.rank(request, None, 1).candidates[0].key == row["key"]
    finally:
        lexical.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_verify_names_the_damage_and_a_reindex_repairs_it(name, copied, catalogue_world, embedder):
    damage, part = CORRUPTIONS[name]
    root = Path(copied.dir)
    assert verify_index(root, copied, embedder).ok
    damage(root)

    found = verify_index(root, copied, embedder)
    assert part in {f.part for f in found.findings}, found.findings

    report = reindex(catalogue_world.catalogue, copied, embedder)
    assert report.published and part in {f["part"] for f in report.repair.findings}
    assert report.rows == len(read_rows(catalogue_world.catalogue))
    assert verify_index(root, copied, embedder).ok
    searches_right(copied, embedder, catalogue_world.catalogue)


def test_a_broken_manifest_is_rewritten_from_the_last_good_build(
    copied, catalogue_world, embedder, built
):
    empty_manifest(Path(copied.dir))
    report = reindex(catalogue_world.catalogue, copied, embedder)
    assert report.repair.manifest_from == built.snapshot.manifest.lucene
    assert (report.added, report.removed) == (0, 0)  # counted against the recovered build
    assert report.embedded == 0  # the vectors were sound: nothing embedded again


@pytest.mark.parametrize(
    "name",
    ["lucene build deleted", "products.arrow deleted", "CURRENT.json empty",
     "missing LanceDB version", "garbage in LanceDB data"],
)  # fmt: skip
def test_search_on_a_broken_index_names_the_part_and_the_repair(name, copied, cfg):
    damage, part = CORRUPTIONS[name]
    damage(Path(copied.dir))
    with pytest.raises(IndexDamagedError) as caught:
        build_funnel(dataclasses.replace(cfg, index=copied), ["bm25"])
    message = str(caught.value)
    assert "python -m flows.index" in message and "\n" not in message
    assert f"is damaged: {part}" in message


def test_search_refuses_stage_2_vectors_that_differ_from_their_checksum(copied, cfg):
    """Valid but wrong vectors (rows swapped, same size) would reverse rankings silently."""
    build = Path(copied.dir) / LUCENE_DIR / manifest_of(Path(copied.dir))["lucene"]
    matrix = np.load(build / VECTORS_FILE)
    np.save(build / VECTORS_FILE, matrix[::-1].copy())
    with pytest.raises(IndexDamagedError, match=f"{VECTORS_FILE} differs from its checksum"):
        build_funnel(dataclasses.replace(cfg, index=copied), ["bm25", "siglip"])


def write_quarantine(folder: Path, n: int) -> None:
    rows = [
        {"source": "listings_0.json.gz", "line": 100 + i, "record_id": None,
         "reason": "truncated", "detail": "unexpected end of file"}
        for i in range(n)
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), folder / QUARANTINE_FILE)


def test_a_reindex_removing_too_much_stops_and_names_count_and_cause(copied, own_world, embedder):
    rows = read_rows(own_world.catalogue)
    before = manifest_of(Path(copied.dir))
    remove_products(own_world.catalogue, [row["key"] for row in rows[-43:]])
    write_quarantine(own_world.folder, 43)

    with pytest.raises(RemovalGuardError) as caught:
        reindex(own_world.catalogue, copied, embedder)
    message = str(caught.value)
    assert f"remove 43 of {len(rows)} products" in message
    assert "ingest quarantined 43 records" in message and "--allow-removals" in message
    assert manifest_of(Path(copied.dir)) == before  # nothing published

    allowed = dataclasses.replace(copied, allow_removals=True)
    report = reindex(own_world.catalogue, allowed, embedder)
    assert report.published and report.removed == 43 and report.rows == len(rows) - 43


def test_a_few_removals_pass_the_guard(copied, own_world, embedder):
    rows = read_rows(own_world.catalogue)
    remove_products(own_world.catalogue, [row["key"] for row in rows[:3]])
    report = reindex(own_world.catalogue, copied, embedder)
    assert report.removed == 3 and report.published
