"""The in-process VLM teacher on the tiny random-weight Qwen2.5-VL: noise in, failed rows out."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pairs_factory import small_pairs

from mars_core.app.compose import load_config
from mars_core.teacher.labelling import consolidate, label_shard, plan_shards

PAIRS = 5


@pytest.mark.slow
def test_tiny_vlm_noise_is_recorded_failed_not_a_crash(
    world, pairs_table, tmp_path, session_overrides, model_cache
):
    teacher = load_config(
        [
            *session_overrides,
            "teacher=tiny_vlm",
            "teacher.batch_size=3",
            "teacher.max_new_tokens=24",
        ]
    ).teacher
    assert teacher.kind == "vlm" and teacher.tiny.family == "qwen2_5_vl"
    pairs = small_pairs(pairs_table, tmp_path, PAIRS)
    for shard in plan_shards(pairs, teacher):
        label_shard(pairs, shard, world.out_dir, teacher, model_cache, world.data.max_image_pixels)
    report = consolidate(pairs, teacher)
    labels = pq.read_table(report.path).to_pylist()
    assert report.rows == PAIRS and report.missing == 0
    failed = [row for row in labels if row["status"] == "failed"]
    assert len(failed) > PAIRS / 2  # random weights rarely write the answer JSON
    assert all(row["attempts"] == teacher.max_attempts and row["score"] is None for row in failed)
    assert all(isinstance(row["raw"], str) for row in labels)
    assert all(row["teacher"] == "tiny_vlm" for row in labels)
