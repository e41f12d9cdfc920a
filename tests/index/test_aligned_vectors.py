"""Stage 2's vectors stay aligned with the Lucene build across re-indexes.

Every build carries its own `vectors.npy`, row i = document i, published with the manifest:
after products are changed, added and removed, every row holds the embedding of its
product's current image, and a reader still on the previous build keeps its own alignment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.catalogue_factory import add_products, change_products, read_rows, remove_products

from mars_core.funnel.stages import BM25, SIGLIP
from mars_core.index.lucene import HIT_COLUMNS, PRODUCTS_FILE, read_products, write_products
from mars_core.index.reindex import reindex
from mars_core.index.store import MANIFEST_FILE, IndexSnapshot
from mars_core.index.vectors import VECTORS_FILE, AlignedVectors
from mars_core.infra.errors import IndexNotBuiltError
from mars_core.search.lexical import LexicalStage
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage


def assert_aligned(snapshot: IndexSnapshot, embedder, catalogue) -> None:
    """Every row of the build's matrix is the fresh embedding of that document's image."""
    images = {r["key"]: r["image_path"] for r in read_rows(catalogue)}
    keys = read_products(snapshot.lucene_path)["key"].to_pylist()
    assert sorted(keys) == sorted(images)
    vectors = AlignedVectors(snapshot.lucene_path, snapshot.manifest.vectors)
    fresh = embedder.embed_images([images[key] for key in keys], progress=False)
    np.testing.assert_allclose(vectors.gather(range(len(keys))), fresh, atol=1e-5)


@pytest.fixture
def built_cfg(own_world, index_cfg, embedder, tmp_path):
    cfg = index_cfg(tmp_path / "index")
    reindex(own_world.catalogue, cfg, embedder)
    return cfg


@pytest.mark.slow
def test_a_reindex_keeps_every_vector_aligned(built_cfg, own_world, embedder):
    cfg = built_cfg
    before = IndexSnapshot.current(cfg.dir)
    old_lexical = LexicalStage.open(before, cfg, name=BM25)
    old_visual = VisualStage.open(before, cfg, embedder, name=SIGLIP, text_weight=0.0)
    rows = read_rows(own_world.catalogue)
    changed = [rows[i]["key"] for i in (0, 7, 20)]
    change_products(own_world.catalogue, changed)
    remove_products(own_world.catalogue, [rows[3]["key"], rows[50]["key"]])
    add_products(own_world.catalogue, 4, seed=9)

    report = reindex(own_world.catalogue, cfg, embedder)
    assert (report.added, report.changed, report.removed) == (4, 3, 2)
    after = IndexSnapshot.current(cfg.dir)
    assert after.manifest.lucene != before.manifest.lucene
    assert_aligned(after, embedder, own_world.catalogue)

    # Every candidate of a search is scored with its product's embedding.
    current = {r["key"]: r for r in read_rows(own_world.catalogue)}
    lexical = LexicalStage.open(after, cfg, name=BM25)
    visual = VisualStage.open(after, cfg, embedder, name=SIGLIP, text_weight=0.0)
    product = current[changed[1]]
    request = SearchRequest(Image.open(product["image_path"]), product["category"].lower())
    candidates = lexical.rank(request, None, 500).candidates
    assert product["key"] in {c.key for c in candidates}
    room = embedder.embed_images([request.room], progress=False)[0]
    images = [current[c.key]["image_path"] for c in candidates]
    expected = embedder.embed_images(images, progress=False) @ room
    ranked = visual.rerank(room, candidates, len(candidates))
    scores = dict(zip([c.key for c in candidates], expected.tolist(), strict=True))
    assert ranked[0].key == product["key"]
    for c in ranked:
        assert c.scores["siglip"] == pytest.approx(scores[c.key], abs=1e-5)

    # A reader opened before the re-index still scores its own build's products correctly.
    original = {r["key"]: r["image_path"] for r in rows}
    old = old_visual.rerank(room, old_lexical.rank(request, None, 500).candidates, 5)
    before_images = embedder.embed_images([original[c.key] for c in old], progress=False)
    for c, image in zip(old, before_images, strict=True):
        assert c.scores["siglip"] == pytest.approx(float(image @ room), abs=1e-5)
    lexical.close()
    old_lexical.close()


@pytest.mark.slow
def test_a_build_without_aligned_vectors_is_upgraded_without_embedding(
    built_cfg, own_world, embedder
):
    """A build of before this change has neither products.arrow nor vectors, and its manifest
    names none: both stages say to re-index, and the re-index makes a fresh build with them
    without embedding anything."""
    cfg = built_cfg
    old = IndexSnapshot.current(cfg.dir)
    (old.lucene_path / PRODUCTS_FILE).unlink()
    (old.lucene_path / VECTORS_FILE).unlink()
    manifest_path = Path(cfg.dir) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(
        json.dumps({key: v for key, v in manifest.items() if key != "vectors"})
    )
    old = IndexSnapshot.current(cfg.dir)
    with pytest.raises(IndexNotBuiltError, match=r"flows\.index"):
        LexicalStage.open(old, cfg, name=BM25)
    with pytest.raises(IndexNotBuiltError, match=r"flows\.index"):
        VisualStage.open(old, cfg, embedder, name=SIGLIP, text_weight=0.0)
    report = reindex(own_world.catalogue, cfg, embedder)
    assert report.published and report.embedded == 0
    snapshot = IndexSnapshot.current(cfg.dir)
    assert snapshot.has_vectors
    assert_aligned(snapshot, embedder, own_world.catalogue)


def test_the_products_file_is_one_batch_whatever_the_catalogue_chunks(tmp_path, catalogue_world):
    """A take from a column of many chunks joins them all first: a search would then cost
    the catalogue's size, not its hits'. The build writes one batch."""
    catalogue = pq.read_table(catalogue_world.catalogue)
    chunked = pa.concat_tables([catalogue.slice(i, 50) for i in range(0, catalogue.num_rows, 50)])
    assert chunked["key"].num_chunks > 1
    write_products(chunked, tmp_path / PRODUCTS_FILE)
    products = read_products(tmp_path)
    assert products.num_rows == catalogue.num_rows
    assert {products[name].num_chunks for name in HIT_COLUMNS} == {1}
    assert products["key"].to_pylist() == catalogue["key"].to_pylist()
