"""Stage 2 on a real LanceDB table: room-photo similarity re-ranks stage 1's candidates."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mars_core.funnel.stages import SIGLIP
from mars_core.index.reindex import reindex
from mars_core.index.store import IndexSnapshot
from mars_core.search.types import Candidate, SearchRequest
from mars_core.search.visual import VisualStage


def visual(built, embedder, text_weight: float = 0.0) -> VisualStage:
    return VisualStage.open(
        built.snapshot, built.cfg, embedder, name=SIGLIP, text_weight=text_weight
    )


@pytest.mark.parametrize("number", [1, 12, 157])
def test_an_identical_image_ranks_first(built, embedder, lexical, rows, number):
    """The room photo *is* one product's image: that product comes first, at cosine 1."""
    product = rows[number]
    request = SearchRequest(Image.open(product["image_path"]), product["category"].lower())
    candidates = lexical.rank(request, None, 200).candidates
    assert product["key"] in {c.key for c in candidates}
    out = visual(built, embedder).rank(request, candidates, 10)
    top = out.candidates[0]
    assert top.key == product["key"]
    assert top.scores["siglip"] == pytest.approx(1.0, abs=1e-4)
    assert "bm25" in top.scores  # stage 1's score travels on
    scores = [c.scores["siglip"] for c in out.candidates]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    assert out.details["mode"] == "rerank"


def test_without_candidates_it_searches_the_whole_table(built, embedder, rows):
    product = rows[42]
    room = Image.open(product["image_path"])
    stage = visual(built, embedder)
    out = stage.rank(SearchRequest(room, "anything"), None, 5)
    assert out.details["mode"] == "nearest" and out.candidates[0].key == product["key"]
    vector = stage.query_vector(SearchRequest(room, "anything"))
    other = "SOFA" if product["category"] != "SOFA" else "BED"
    within = stage.nearest(vector, 5, category=other)
    assert len(within) == 5 and {c.product["category"] for c in within} == {other}


def test_the_query_text_blends_in_by_weight(built, embedder, lexical, rows):
    """w = 1 ranks by the text alone: the same order as cosine(text, product image)."""
    product = rows[3]
    request = SearchRequest(Image.open(product["image_path"]), "a red lamp")
    candidates = lexical.rank(request, None, 30).candidates
    by_text = visual(built, embedder, text_weight=1.0).rank(request, candidates, 30).candidates
    text = embedder.embed_texts(["a red lamp"])[0]
    images = embedder.embed_images([c.product["image_path"] for c in candidates], progress=False)
    expected = [candidates[i].key for i in np.argsort(-(images @ text), kind="stable")]
    assert [c.key for c in by_text] == expected
    half = visual(built, embedder, text_weight=0.5).rank(request, candidates, 30).candidates
    room = embedder.embed_images([request.room], progress=False)[0]
    for c in half[:5]:
        (image,) = embedder.embed_images([c.product["image_path"]], progress=False)
        blended = 0.5 * float(image @ room) + 0.5 * float(image @ text)
        assert c.scores["siglip"] == pytest.approx(blended, abs=1e-4)


def test_candidates_outside_the_index_are_named(built, embedder, rows):
    request = SearchRequest(Image.open(rows[0]["image_path"]), "bed")
    stranger = Candidate("NOPE@nowhere", {"category": "BED"})
    with pytest.raises(ValueError, match="NOPE@nowhere"):
        visual(built, embedder).rank(request, [stranger], 5)


def test_an_index_of_another_embedder_is_refused(built, other_embedder):
    with pytest.raises(ValueError, match="built with embedder"):
        VisualStage.open(built.snapshot, built.cfg, other_embedder, name=SIGLIP, text_weight=0.0)


def test_ann_index_from_the_configured_size_on(
    catalogue_world, index_cfg, embedder, rows, tmp_path
):
    """At ann_min_rows the table gets an IVF-PQ index (cosine); search still finds the image."""
    cfg = index_cfg(tmp_path / "index", ann_min_rows=256, ann_partitions=4)
    report = reindex(catalogue_world.catalogue, cfg, embedder)
    assert report.ann_index is True
    snapshot = IndexSnapshot.current(cfg.dir)
    stage = VisualStage.open(snapshot, cfg, embedder, name=SIGLIP, text_weight=0.0)
    indexed = {tuple(ix.columns): ix.index_type for ix in stage.index.table.list_indices()}
    assert indexed[("vector",)] == "IvfPq" and indexed[("category",)] == "Bitmap"
    product = rows[77]
    out = stage.rank(SearchRequest(Image.open(product["image_path"]), "x"), None, 5)
    assert out.candidates[0].key == product["key"]
