"""Mining tasks: plan room shards, mine each shard (mapped), combine into the pairs files."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import EmbedderConfig, IndexConfig, MiningConfig
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
from tasks.shards import embedder_for


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
