"""Index build task: one call to the incremental re-index (the first build is one too)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import EmbedderConfig, IndexConfig
from mars_core.embedder import Embedder
from mars_core.index.reindex import ReindexReport, reindex


@task(name="reindex")
def reindex_catalogue(
    catalogue: str, index: IndexConfig, embedder: EmbedderConfig, models_dir: str
) -> ReindexReport:
    """Embed new or changed products, rebuild Lucene, publish both; returns the report."""
    return reindex(Path(catalogue), index, Embedder.from_config(embedder, models_dir))
