"""How big a budget beyond the query needs to be, and what diversity buys: one world, one
student, several budgets and choices side by side.

    python -m bench.beyond_budget [--split train] [--budgets 10,13,20,24]
        [--diversities 0.5] [hydra overrides...]

Run it on a generated world with a trained student (`student.adapter=<folder>` and the fit
bar it was registered with). Two parts:

* **without the agent**: for every room of `--split` (train: the rooms the student learned
  on, so a choice is not tuned on the held-out ones) and every category with fitting and
  misfitting products there, at which pick its first fitting product comes when the
  category's candidates are picked by closeness alone (`funnel.beyond_diversity=0`) and by
  each `--diversities` value: the share found within 1, 2 and 4 picks, outdoor and indoor
  rooms apart (the shared-type trap is outdoors);
* **with the agent**, per budget x diversity: a room-only search of every room and a
  `--nofit-query` search of every pool and patio room, judged by the ground truth over the
  whole catalogue: room-only category recall@10 (outdoor rooms, all rooms), false nothing-fits,
  precision@10, and alternatives recall and precision (`mars_core/evaluation/beyond.py`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from mars_core.infra.runtime import setup_runtime

OUTDOOR = ("pool", "patio")
WITHIN = (1, 2, 4)


def world_truth(cfg, split: str):
    """The split's rooms, each as the evaluation's RoomTruth over the whole catalogue, and
    each product's catalogue row by category."""
    import pyarrow.parquet as pq

    from mars_core.catalogue.schema import (
        CATALOGUE_FILE,
        GROUND_TRUTH_FILE,
        ROOMS_FILE,
        SPLITS_FILE,
    )
    from mars_core.evaluation.beyond import RoomTruth

    out = Path(cfg.data.out_dir)
    chosen = {
        row["id"]
        for row in pq.read_table(out / SPLITS_FILE).to_pylist()
        if row["kind"] == "room" and row["split"] == split
    }
    rooms = [r for r in pq.read_table(out / ROOMS_FILE).to_pylist() if r["room_id"] in chosen]
    products = pq.read_table(out / CATALOGUE_FILE).to_pylist()
    category = {p["key"]: p["category"] for p in products}
    grades: dict[str, dict[str, int]] = defaultdict(dict)
    for row in pq.read_table(
        out / GROUND_TRUTH_FILE, columns=["room_id", "key", "grade"]
    ).to_pylist():
        if row["room_id"] in chosen and row["key"] in category:
            grades[row["room_id"]][row["key"]] = row["grade"]
    truths = {}
    for room in rooms:
        fits: dict[str, bool] = {}
        for key, grade in grades[room["room_id"]].items():
            fits[category[key]] = fits.get(category[key], False) or grade > 0
        truths[room["room_id"]] = RoomTruth(
            room["room_id"], room["path"], fits, grades[room["room_id"]]
        )
    by_category: dict[str, list[dict]] = defaultdict(list)
    for product in products:
        by_category[product["category"]].append(product)
    return rooms, truths, by_category


def first_fits(cfg, rooms, truths, by_category, diversities: list[float]) -> str:
    """Without the agent: where a category's first fitting product comes, per choice."""
    from mars_core.funnel.budget import Category, Likeness, allocate
    from mars_core.funnel.stages import build_funnel
    from mars_core.vision.images import load_image

    found: dict[tuple[float, bool], list[int]] = defaultdict(list)
    with build_funnel(cfg) as funnel:
        if funnel.beyond is None:
            print("error: the funnel has no stage 2 and agent (funnel.stages)", file=sys.stderr)
            raise SystemExit(2)
        visual = funnel.beyond.visual
        for room in rooms:
            vector = visual.room_vector(load_image(room["path"], cfg.data.max_image_pixels))
            grades = truths[room["room_id"]].grades
            for products in by_category.values():
                fits = np.array([grades[p["key"]] > 0 for p in products])
                if fits.all() or not fits.any():
                    continue
                rows = visual.vectors.rows([p["key"] for p in products], [None] * len(products))
                vectors = visual.vectors.gather(rows)
                likeness = Likeness.of(
                    vectors,
                    [p["search_text"] or p["name"] for p in products],
                    cfg.funnel.beyond_listing_weight,
                )
                for diversity in [0.0, *diversities]:
                    category = Category(vectors @ vector, likeness)
                    (order,) = allocate([category], len(products), diversity)
                    first = next(i for i, j in enumerate(order) if fits[j])
                    found[(diversity, room["room_type"] in OUTDOOR)].append(first)
    lines = ["first fitting product, by pick (without the agent):"]
    for (diversity, outdoor), picks in sorted(found.items()):
        within = " / ".join(f"{np.mean(np.array(picks) < n):.2f}" for n in WITHIN)
        where = "outdoor" if outdoor else "indoor"
        lines.append(
            f"  diversity {diversity}: {where} rooms, within {'/'.join(map(str, WITHIN))} "
            f"picks {within} (n={len(picks)})"
        )
    return "\n".join(lines)


def with_agent(overrides: list[str], rooms, truths, nofit_query: str) -> dict[str, float]:
    """Room-only and alternatives metrics of one funnel configuration over the rooms."""
    from mars_core.app.compose import load_config
    from mars_core.evaluation.beyond import (
        AlternativesSought,
        RoomOnlyResult,
        alternatives_metrics,
        room_only_metrics,
    )
    from mars_core.funnel.stages import build_funnel
    from mars_core.search.types import SearchRequest
    from mars_core.vision.images import load_image

    cfg = load_config(overrides)
    room_only, outdoor, sought = [], [], []
    with build_funnel(cfg) as funnel:
        for room in rooms:
            truth = truths[room["room_id"]]
            image = load_image(room["path"], cfg.data.max_image_pixels)
            result = funnel.search(SearchRequest(image, "", room["room_id"]))
            shown = [] if result.nothing_fits else result.results
            found = RoomOnlyResult(
                truth,
                [c.key for c in shown],
                [str(c.product["category"]) for c in shown],
                nothing_fits=result.nothing_fits,
            )
            room_only.append(found)
            if room["room_type"] not in OUTDOOR:
                continue
            outdoor.append(found)
            nofit = funnel.search(SearchRequest(image, nofit_query, room["room_id"]))
            if "alternatives" in nofit.details:
                asked = nofit.lock.category if nofit.lock else ""
                offered = [a.category for a in nofit.alternatives]
                sought.append(AlternativesSought(room["room_id"], str(asked), offered))
    everywhere = room_only_metrics(room_only, [10], cfg.funnel.per_category)
    outdoors = room_only_metrics(outdoor, [10], cfg.funnel.per_category)
    offered = alternatives_metrics(sought, truths, cfg.funnel.alternatives)
    return {
        "room-only recall@10 outdoors": outdoors["room_only.category_recall_at_10"],
        "room-only recall@10": everywhere["room_only.category_recall_at_10"],
        "false nothing-fits": everywhere["room_only.nothing_shown_while_fits"],
        "room-only precision@10": everywhere["room_only.precision_at_10"],
        "alternatives recall": offered["alternatives_recall"],
        "alternatives precision": offered["alternatives_precision"],
    }


def numbers(kind):
    """An argument of comma-separated numbers ("10,13,20")."""
    return lambda text: [kind(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--budgets", type=numbers(int), default="10,13,20,24")
    parser.add_argument(
        "--diversities", type=numbers(float), default="0.5", help="besides 0 (closeness alone)"
    )
    parser.add_argument("--nofit-query", default="bed", help="a query nothing fits outdoors")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (student, world)")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.app.compose import load_config

    cfg = load_config(args.overrides)
    rooms, truths, by_category = world_truth(cfg, args.split)
    print(f"{len(rooms)} {args.split} rooms, {len(by_category)} categories")
    print(first_fits(cfg, rooms, truths, by_category, args.diversities))
    for diversity in [0.0, *args.diversities]:
        for budget in args.budgets:
            knobs = [f"funnel.beyond_budget={budget}", f"funnel.beyond_diversity={diversity}"]
            metrics = with_agent([*args.overrides, *knobs], rooms, truths, args.nofit_query)
            cells = ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())
            print(f"budget {budget}, diversity {diversity}: {cells}")


if __name__ == "__main__":
    main()
