"""`index.lance_uri`: the LanceDB database apart from the Lucene builds (an object store at
real scale). A URI is checked by its form when the config composes (no request is sent), and
a build whose vectors live elsewhere is published, verified and searched like any other."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from mars_core.app.compose import load_config
from mars_core.funnel.stages import SIGLIP
from mars_core.index.reindex import reindex
from mars_core.index.store import LANCE_DIR, IndexSnapshot
from mars_core.index.verify import verify_index
from mars_core.infra.errors import ConfigError
from mars_core.search.types import SearchRequest
from mars_core.search.visual import VisualStage


@pytest.mark.parametrize(
    "uri", ["s3://mars-vectors/prod/lance", "gs://bucket/lance", "az://container/x", "/data/lance"]
)
def test_object_store_uris_and_paths_validate_without_the_network(uri):
    assert load_config([f"index.lance_uri={uri}"]).index.lance_uri == uri


@pytest.mark.parametrize(
    ("uri", "problem"),
    [("ftp://host/lance", "scheme 'ftp'"), ("s3:///lance", "names no bucket")],
)
def test_a_uri_lancedb_cannot_open_is_named(uri, problem):
    with pytest.raises(ConfigError, match=problem):
        load_config([f"index.lance_uri={uri}"])


@pytest.mark.slow
def test_vectors_elsewhere_are_published_verified_and_searched(
    catalogue_world, index_cfg, embedder, tmp_path
):
    elsewhere = tmp_path / "vector-store" / "lance"
    cfg = index_cfg(tmp_path / "index", lance_uri=str(elsewhere))
    report = reindex(catalogue_world.catalogue, cfg, embedder)
    snapshot = IndexSnapshot.current(cfg.dir)
    assert snapshot.lance_uri == str(elsewhere) and report.lance_bytes > 0
    assert (elsewhere / f"{cfg.table}.lance").is_dir()
    assert not (tmp_path / "index" / LANCE_DIR).exists()
    assert verify_index(Path(cfg.dir), cfg, embedder).ok

    rows = pq.read_table(catalogue_world.catalogue, columns=["key", "image_path"]).to_pylist()
    shared = Counter(row["image_path"] for row in rows)  # listings of one item share images
    alone = next(row for row in rows if shared[row["image_path"]] == 1)
    visual = VisualStage.open(snapshot, cfg, embedder, name=SIGLIP, text_weight=0.0)
    ranked = visual.rank(SearchRequest(Image.open(alone["image_path"]), "x"), None, 1)
    assert ranked.details["mode"] == "nearest"  # a search of the LanceDB table elsewhere
    assert ranked.candidates[0].key == alone["key"]
