"""Labelling tasks: plan the pair shards, label one shard, consolidate the shards."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mars_core.config import TeacherConfig
from mars_core.teacher.labelling import (
    ConsolidateReport,
    ShardReport,
    consolidate,
    label_shard,
    plan_shards,
)


@task(name="plan-label-shards")
def plan_label_shards(pairs: str, teacher: TeacherConfig) -> list[int]:
    """The pair shards to map over (and a clean-up of what a killed run left half-written)."""
    return plan_shards(Path(pairs), teacher)


@task(name="label-shard")
def label_pair_shard(
    pairs: str,
    shard: int,
    catalogue_dir: str,
    teacher: TeacherConfig,
    models_dir: str,
    max_image_pixels: int,
) -> ShardReport:
    """Label the pairs of one shard that no earlier run labelled."""
    return label_shard(
        Path(pairs), shard, Path(catalogue_dir), teacher, Path(models_dir), max_image_pixels
    )


@task(name="consolidate-labels")
def consolidate_labels(pairs: str, teacher: TeacherConfig) -> ConsolidateReport:
    """Every shard's labels as one table beside the pairs file."""
    return consolidate(Path(pairs), teacher)
