"""Index build tasks: the incremental re-index (the first build is one too, and each repairs
what verify finds broken first), the read-only check of a published index, and the agent's
cached product visual tokens."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.agent.visual_cache import (
    VISUAL_TOKENS_DIR,
    VisualCacheReport,
    cache_catalogue_tokens,
)
from mars_core.config import EmbedderConfig, IndexConfig, StudentConfig
from mars_core.embedder import Embedder
from mars_core.index.reindex import ReindexReport, reindex
from mars_core.index.verify import VerifyReport, verify_index
from tasks.progress import PrefectProgress


@task(name="reindex")
def reindex_catalogue(
    catalogue: str,
    index: IndexConfig,
    embedder: EmbedderConfig,
    models_dir: str,
    max_image_pixels: int,
) -> ReindexReport:
    """Embed new or changed products, rebuild Lucene, publish both; returns the report. The
    Prefect UI shows the embedding's progress (artifact `reindex-embedding`)."""
    loaded = Embedder.from_config(embedder, models_dir, max_image_pixels=max_image_pixels)
    progress = PrefectProgress("reindex-embedding", "products embedded by this re-index")
    report = reindex(Path(catalogue), index, loaded, progress)
    progress.finish()
    return report


@task(name="verify-index")
def verify_published(
    index: IndexConfig, embedder: EmbedderConfig, models_dir: str, max_image_pixels: int
) -> VerifyReport:
    """Check the published index part by part; the embedder loads only to sample vectors."""
    loaded = None
    if index.verify_sample > 0:
        loaded = Embedder.from_config(embedder, models_dir, max_image_pixels=max_image_pixels)
    return verify_index(Path(index.dir), index, loaded)


@task(name="visual-tokens")
def cache_visual_tokens(
    catalogue: str,
    student: StudentConfig,
    index_dir: str,
    models_dir: str,
    max_image_pixels: int,
) -> VisualCacheReport:
    """Every catalogue image's visual tokens for the student's frozen vision tower."""
    folder = Path(index_dir) / VISUAL_TOKENS_DIR
    return cache_catalogue_tokens(
        Path(catalogue), student, folder, Path(models_dir), max_image_pixels
    )
