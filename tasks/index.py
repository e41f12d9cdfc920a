"""Index build task: one call to the incremental re-index (the first build is one too)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import EmbedderConfig, IndexConfig
from mars_core.embedder import Embedder
from mars_core.index.reindex import ReindexReport, reindex


@task(name="reindex")
def reindex_catalogue(
    catalogue: str,
    index: IndexConfig,
    embedder: EmbedderConfig,
    models_dir: str,
    max_image_pixels: int,
) -> ReindexReport:
    """Embed new or changed products, rebuild Lucene, publish both; returns the report."""
    loaded = Embedder.from_config(embedder, models_dir, max_image_pixels=max_image_pixels)
    return reindex(Path(catalogue), index, loaded)
