"""Index build tasks: the incremental re-index (the first build is one too, and each repairs
what verify finds broken first; its embedding shards map on the pipeline's runner), the
read-only check of a published index, and the agent's cached product visual tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prefect import task, unmapped

from mars_core.agent.visual_cache import VISUAL_TOKENS_DIR
from mars_core.agent.visual_cache_build import VisualCacheReport, cache_catalogue_tokens
from mars_core.config import EmbedderConfig, IndexConfig, PipelineConfig, StudentConfig
from mars_core.index.reindex import ReindexReport, reindex
from mars_core.index.shards import EmbedShard, ShardVectors, embed_shard
from mars_core.index.verify import VerifyReport, verify_index
from tasks.progress import PrefectProgress
from tasks.shards import embedder_for, iter_shards


@task(name="reindex")
def reindex_catalogue(
    catalogue: str,
    index: IndexConfig,
    embedder: EmbedderConfig,
    models_dir: str,
    max_image_pixels: int,
    pipeline: PipelineConfig,
) -> ReindexReport:
    """Plan, embed new or changed products in shards, rebuild Lucene, publish both; returns
    the report. The shards are `embed-shard` task runs on `pipeline.runner`; the Prefect UI
    shows the embedding's progress (artifact `reindex-embedding`)."""
    loaded = embedder_for(embedder, models_dir, max_image_pixels)
    progress = PrefectProgress("reindex-embedding", "products embedded by this re-index")

    def on_runner(shards: list[EmbedShard]) -> Iterator[ShardVectors]:
        mapped = {
            "shard": shards,
            "embedder": unmapped(embedder),
            "models_dir": unmapped(models_dir),
            "max_image_pixels": unmapped(max_image_pixels),
        }
        return iter_shards(pipeline, embed_products, mapped)

    report = reindex(Path(catalogue), index, loaded, progress, embed=on_runner)
    progress.finish()
    return report


@task(name="embed-shard")
def embed_products(
    shard: EmbedShard, embedder: EmbedderConfig, models_dir: str, max_image_pixels: int
) -> ShardVectors:
    """One shard's vectors (the re-index commits them as they arrive)."""
    return embed_shard(shard, embedder_for(embedder, models_dir, max_image_pixels))


@task(name="verify-index")
def verify_published(
    index: IndexConfig, embedder: EmbedderConfig, models_dir: str, max_image_pixels: int
) -> VerifyReport:
    """Check the published index part by part; the embedder loads only to sample vectors."""
    loaded = None
    if index.verify_sample > 0:
        loaded = embedder_for(embedder, models_dir, max_image_pixels)
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
