"""Mining tasks: plan room shards, mine each shard (mapped), combine into the pairs files."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path

from prefect import task

from mars_core.config import EmbedderConfig, IndexConfig, MiningConfig
from mars_core.embedder import Embedder
from mars_core.index.store import IndexSnapshot
from mars_core.mining.mine import (
    MiningPlan,
    MiningReport,
    RoomShard,
    ShardResult,
    combine,
    mine_shard,
    plan_shards,
)

_LOADED: dict[str, Embedder] = {}
_LOADING = threading.Lock()


def embedder_for(cfg: EmbedderConfig, models_dir: str, max_image_pixels: int) -> Embedder:
    """One loaded embedder per worker process and config, shared by the shards it runs
    (loading SigLIP-so400m per shard would cost more than mining the shard)."""
    key = json.dumps([asdict(cfg), models_dir, max_image_pixels], sort_keys=True, default=str)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = Embedder.from_config(cfg, models_dir, max_image_pixels=max_image_pixels)
        return _LOADED[key]


@task(name="mining-plan")
def plan_mining(out_dir: str, cfg: MiningConfig) -> MiningPlan:
    """The room shards of each split, and the rooms without a split."""
    return plan_shards(Path(out_dir), cfg)


@task(name="mine-shard")
def mine_room_shard(
    shard: RoomShard,
    out_dir: str,
    snapshot: IndexSnapshot,
    index: IndexConfig,
    embedder: EmbedderConfig,
    models_dir: str,
    max_image_pixels: int,
    cfg: MiningConfig,
) -> ShardResult:
    """The pairs of one shard of rooms (a few hundred rows)."""
    loaded = embedder_for(embedder, models_dir, max_image_pixels)
    return mine_shard(shard, Path(out_dir), snapshot, index, loaded, cfg)


@task(name="mining-combine")
def combine_pairs(
    results: list[ShardResult],
    plan: MiningPlan,
    out_dir: str,
    cfg: MiningConfig,
    index: IndexConfig,
) -> MiningReport:
    """Write pairs.parquet (and heldout_pairs.parquet) atomically; returns the counts."""
    return combine(results, plan, Path(out_dir), cfg, index.vocabulary)
