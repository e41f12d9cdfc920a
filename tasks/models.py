"""Tasks that make model folders available (tiny ones are built offline, once per recipe)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import EmbedderConfig, VLMConfig
from mars_core.models.loading import clip_source, vlm_source


@task(name="prepare-vlm")
def prepare_vlm(cfg: VLMConfig, cache_dir: str) -> str:
    """The folder or hub id a VLM loads from; builds the tiny model on first use."""
    return vlm_source(cfg, Path(cache_dir))


@task(name="prepare-embedder")
def prepare_embedder(cfg: EmbedderConfig, cache_dir: str) -> str:
    """The open_clip model name (a local-dir: folder for the tiny model)."""
    name, _ = clip_source(cfg, Path(cache_dir))
    return name
