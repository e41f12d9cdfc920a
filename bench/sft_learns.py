"""Does the SFT recipe learn? Train the tiny student on truth-like labels, score held-out rooms.

MEASUREMENT ONLY: the labels here come from the generated world's ground truth (`fits` ->
0.9 / 0.1), standing in for the offline metadata teacher, which judges the same thing from
room type and product category. Production code never reads ground_truth.parquet.

    python -m bench.sft_learns [--per-cell 4] [hydra overrides for the train flow...]

Steps: generate + ingest the world (under $MARS_HOME), write labels.parquet for train-split
rooms x train-split products (`--per-cell` products per room x category), run the `train`
flow (`train=tiny` by default), then fast-score every test-split room x test-split product
with the registered `candidate` through `AgentScorer` and print:

* accuracy of (score >= 0.5) against `fits`;
* for (room, category) requests with no fitting product: share whose max score is < 0.5
  (the agent would abstain); for the others: share whose max score is >= 0.5.
"""

from __future__ import annotations

from mars_core.infra.runtime import setup_runtime

setup_runtime()  # an entry point: offline before the imports below load the hub

import argparse
import random
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import ProductView
from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    GROUND_TRUTH_FILE,
    ROOMS_FILE,
    SPLITS_FILE,
)
from mars_core.infra.io import atomic_write_parquet
from mars_core.infra.registry import CANDIDATE, registry_uri
from mars_core.prompt import PROMPT_VERSION, answer_text, product_text
from mars_core.teacher.schema import LABELS_FILE, LABELS_SCHEMA
from mars_core.vision.images import load_image

FIT, MISFIT = 0.9, 0.1


def query_for(category: str) -> str:
    """What a person types for a category (`PATIO_UMBRELLA` -> "patio umbrella")."""
    return category.lower().replace("_", " ")


def truth_labels(out_dir: Path, per_cell: int, seed: int) -> pa.Table:
    """Labels in LABELS_SCHEMA for train rooms x train products, from the ground truth."""
    truth = pd.read_parquet(out_dir / GROUND_TRUTH_FILE)
    splits = pd.read_parquet(out_dir / SPLITS_FILE)
    train_ids = set(splits.loc[splits["split"] == "train", "id"])
    truth = truth[truth["room_id"].isin(train_ids) & truth["key"].isin(train_ids)]
    rng = random.Random(seed)
    rows = []
    for (room_id, _), cell in truth.groupby(["room_id", "category"]):
        for _, row in cell.sample(
            min(per_cell, len(cell)), random_state=rng.randrange(2**31)
        ).iterrows():
            score = FIT if row["fits"] else MISFIT
            rows.append(
                {
                    "pair_id": f"{room_id}|{row['key']}",
                    "room_id": room_id,
                    "room_type": row["room_type"],
                    "key": row["key"],
                    "category": row["category"],
                    "query": query_for(row["category"]),
                    "stratum": "random",
                    "similarity": 0.0,
                    "rank": 1,
                    "split": "train",
                    "score": score,
                    "rationale": row["reason"],
                    "raw": answer_text(score, row["reason"]),
                    "status": "ok",
                    "attempts": 1,
                    "teacher": "ground-truth-bench",
                    "prompt_version": PROMPT_VERSION,
                }
            )
    return pa.Table.from_pylist(rows, schema=LABELS_SCHEMA)


def held_out_scores(cfg, scorer: AgentScorer) -> pd.DataFrame:
    """Fast scores of every test room x test product, with the ground truth's `fits`."""
    out_dir = Path(cfg.data.out_dir)
    truth = pd.read_parquet(out_dir / GROUND_TRUTH_FILE)
    splits = pd.read_parquet(out_dir / SPLITS_FILE)
    test_ids = set(splits.loc[splits["split"] == "test", "id"])
    truth = truth[truth["room_id"].isin(test_ids) & truth["key"].isin(test_ids)]
    rooms = pd.read_parquet(out_dir / ROOMS_FILE).set_index("room_id")
    products = pd.read_parquet(out_dir / CATALOGUE_FILE).set_index("key")
    limit = cfg.data.max_image_pixels
    views = {
        key: ProductView(
            load_image(products.loc[key, "image_path"], limit),
            product_text(products.loc[key].to_dict() | {"key": key}),
        )
        for key in truth["key"].unique()
    }
    parts = []
    for (room_id, category), cell in truth.groupby(["room_id", "category"]):
        room = load_image(rooms.loc[room_id, "path"], limit)
        scores = scorer.score(room, query_for(category), [views[k] for k in cell["key"]])
        parts.append(cell.assign(score=scores))
    return pd.concat(parts)


def report(scored: pd.DataFrame) -> dict[str, float]:
    """Accuracy vs `fits`, and abstention on requests with no fitting product."""
    accuracy = float(((scored["score"] >= 0.5) == scored["fits"]).mean())
    cells = scored.groupby(["room_id", "category"]).agg(best=("score", "max"), fits=("fits", "any"))
    empty, full = cells[~cells["fits"]], cells[cells["fits"]]
    return {
        "pairs": len(scored),
        "accuracy": accuracy,
        "requests_no_fit": len(empty),
        "abstain_no_fit": float((empty["best"] < 0.5).mean()),
        "requests_with_fit": len(full),
        "answers_with_fit": float((full["best"] >= 0.5).mean()),
        "mean_score_fits": float(scored.loc[scored["fits"], "score"].mean()),
        "mean_score_misfits": float(scored.loc[~scored["fits"], "score"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=4, help="products per room x category")
    args, overrides = parser.parse_known_args()

    from flows.train import train
    from mars_core.app.compose import load_config
    from mars_core.catalogue.ingest import ingest
    from mars_core.catalogue.splits import write_splits
    from mars_core.world.generate import generate_world

    cfg = load_config(overrides)
    generate_world(cfg.data)
    ingest(cfg.data)
    write_splits(Path(cfg.data.out_dir), cfg.data.test_fraction, cfg.data.seed)
    labels = truth_labels(Path(cfg.data.out_dir), args.per_cell, cfg.seed)
    atomic_write_parquet(Path(cfg.data.out_dir) / LABELS_FILE, labels)
    fitting = sum(score >= 0.5 for score in labels["score"].to_pylist())
    print(f"labels: {labels.num_rows} pairs ({fitting} fit)")

    started = time.monotonic()
    summary = train(overrides=overrides)
    wall = time.monotonic() - started
    print(
        f"train flow: {wall:.0f} s wall, {summary.training.steps} steps, stopped by "
        f"{summary.training.stopped_by}, best val loss {summary.training.best_val_loss}, "
        f"sizes {summary.sizes}"
    )
    student_cfg = load_config(
        [*overrides, f"student.adapter={registry_uri(cfg.student.registry, CANDIDATE)}"]
    )
    scorer = AgentScorer.from_config(student_cfg.student, Path(student_cfg.paths.models))
    trained = report(held_out_scores(student_cfg, scorer))
    base = report(
        held_out_scores(cfg, AgentScorer.from_config(cfg.student, Path(cfg.paths.models)))
    )
    print(f"{'held-out (test rooms x test products)':<40}{'untrained':>12}{'trained':>12}")
    for name in trained:
        print(f"{name:<40}{base[name]:>12.3f}{trained[name]:>12.3f}")


if __name__ == "__main__":
    main()
