"""The metadata teacher on the generated world: agreement with the truth it never reads."""

from __future__ import annotations

import ast
import inspect

import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import spearmanr

import mars_core.teacher.metadata as metadata_module
from mars_core.catalogue.schema import GROUND_TRUTH_FILE
from mars_core.compose import load_config
from mars_core.teacher.labelling import consolidate, label_shard, plan_shards
from mars_core.teacher.metadata import MetadataTeacher

MIN_AGREEMENT = 0.95


def label_all(pairs_file, world, teacher, cache) -> pa.Table:
    for shard in plan_shards(pairs_file, teacher):
        label_shard(pairs_file, shard, world.out_dir, teacher, cache, world.data.max_image_pixels)
    return pq.read_table(consolidate(pairs_file, teacher).path)


def test_metadata_teacher_agrees_with_the_ground_truth_it_never_reads(
    cfg, world, pairs_file, model_cache
):
    labels = label_all(pairs_file, world, cfg.teacher, model_cache).to_pylist()
    truth = {
        (t["room_id"], t["key"]): t
        for t in pq.read_table(world.out_dir / GROUND_TRUTH_FILE).to_pylist()
    }
    judged = [(label, truth[(label["room_id"], label["key"])]) for label in labels]
    assert len(judged) == pq.read_metadata(pairs_file).num_rows > 500
    assert all(label["status"] == "ok" and label["rationale"] for label, _ in judged)
    agree = sum((label["score"] >= 0.5) == t["fits"] for label, t in judged) / len(judged)
    rho = spearmanr([label["score"] for label, _ in judged], [t["grade"] for _, t in judged])[0]
    print(f"\nmetadata teacher: fit agreement {agree:.1%} over {len(judged)} pairs, "
          f"Spearman with the true grade {rho:.3f}")  # fmt: skip
    assert agree >= MIN_AGREEMENT
    assert rho > 0.5
    traps = [label for label, t in judged if t["trap"]]
    assert traps and all(label["score"] < 0.5 for label in traps)


def test_rationale_says_what_it_used():
    teacher = MetadataTeacher(load_config().teacher)
    bed = {"category": "BED", "name": "Blue Wood Bed, Queen", "keywords": ["bed"]}
    assert teacher.judge("pool", bed) == (0.1, "an indoor bed does not belong outdoors by the pool")
    assert teacher.judge("bedroom", bed) == (0.9, "a bed belongs in a bedroom")
    lounger = {"category": "OUTDOOR_LOUNGE_CHAIR", "name": "Teak Sun Lounger", "keywords": []}
    score, why = teacher.judge("kitchen", lounger)
    assert score < 0.5 and "outdoor lounge chair does not belong in a kitchen" in why
    indoor_only = {"category": "PLANTER", "name": "Planter", "description": "Indoor use only."}
    score, why = teacher.judge("pool", indoor_only)
    assert score == 0.6 and "'indoor use only'" in why


def test_overriding_room_fit_for_one_room_type_changes_its_labels(
    world, pairs_file, session_overrides, model_cache
):
    base = load_config(session_overrides).teacher
    changed = load_config([*session_overrides, "teacher.room_fit.kitchen=[CHAIR,TABLE,LAMP]"])
    assert changed.teacher.room_fit["kitchen"] == ["CHAIR", "TABLE", "LAMP"]
    before = {r["pair_id"]: r for r in label_all(pairs_file, world, base, model_cache).to_pylist()}
    after = label_all(pairs_file, world, changed.teacher, model_cache).to_pylist()
    for row in after:
        old = before[row["pair_id"]]
        if row["category"] == "STOOL":
            # No room type lists stools any more: the teacher no longer knows where they go.
            assert row["score"] == 0.5 and "nothing says" in row["rationale"]
        elif row["room_type"] != "kitchen":
            assert (row["score"], row["rationale"]) == (old["score"], old["rationale"])
        elif row["category"] in ("CHAIR", "TABLE", "LAMP"):
            assert row["score"] >= 0.5, row
        elif row["category"] == "CABINET":
            assert old["score"] >= 0.5 > row["score"], row
    assert any(r["room_type"] == "kitchen" and r["category"] == "LAMP" for r in after)


def test_metadata_teacher_never_reads_the_world_or_its_truth():
    tree = ast.parse(inspect.getsource(metadata_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not any(name and name.startswith("mars_core.world") for name in imported)
    assert "ground_truth" not in inspect.getsource(metadata_module)
