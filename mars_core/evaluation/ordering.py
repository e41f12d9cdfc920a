"""Choose, on validation rooms, how the candidate student's agent and SigLIP combine.

The rooms are training's own validation rooms (`catalogue.splits.validation_rooms` over the
labelled rooms, `train.val_fraction`, `train.seed`), searched over train-split products only,
so the test split stays unseen. A ground truth is never read: every candidate is judged by the
teacher (as `evaluation/reference.py` asks it), graded as held-out labels are. The agent scores
each request once; every ordering of `ORDERINGS` is then applied to those same scores, and the
best abstention-aware nDCG@10 wins. A tie goes to the earlier one: `fits_by_siglip` first,
since a teacher that judges fit alone (the metadata teacher) cannot tell orders within fits
apart, while stage 2 measured the visual similarity the teacher never judged. The choice is
recorded as the version's tags (`funnel.order`, `funnel.siglip_blend`), which the funnel reads
whenever that version serves with `funnel.order=auto`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow.parquet as pq

from mars_core.agent.ordering import AGENT, BLEND_TAG, FITS_BY_SIGLIP, ORDER_TAG, Ordering
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE, SPLITS_FILE
from mars_core.catalogue.splits import validation_rooms
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import (
    Configuration,
    configured,
    narrow_to_test_split,
    ranked_request,
    searched,
)
from mars_core.evaluation.metrics import RankedRequest, metric_key, ranking_measures
from mars_core.evaluation.reference import teacher_judge
from mars_core.evaluation.requests import EvalRequest, EvalSet, category_query, teacher_grade
from mars_core.funnel.stages import build_funnel
from mars_core.infra.tracking import describe_version
from mars_core.search.funnel import presented
from mars_core.search.types import Candidate
from mars_core.teacher.schema import LABELS_FILE

# (order, siglip_blend) candidates, in tie-break order.
ORDERINGS = ((FITS_BY_SIGLIP, 0.0), (AGENT, 0.0), (AGENT, 0.25), (AGENT, 0.5))
MEASURE = "nDCG@10"


def validation_set(cfg: MarsConfig) -> EvalSet:
    """Validation rooms x the categories of train-split products, ungraded (judged later)."""
    data_dir = Path(cfg.data.out_dir)
    labels = pq.read_table(data_dir / LABELS_FILE, columns=["room_id", "status"]).to_pylist()
    labelled = sorted({row["room_id"] for row in labels if row["status"] == "ok"})
    rooms_val = validation_rooms(labelled, cfg.train.val_fraction, cfg.train.seed)
    splits = pq.read_table(data_dir / SPLITS_FILE).to_pylist()
    train = {row["id"] for row in splits if row["kind"] == "product" and row["split"] == "train"}
    catalogue = pq.read_table(data_dir / CATALOGUE_FILE, columns=["key", "category"]).to_pylist()
    categories = sorted({row["category"] for row in catalogue if row["key"] in train})
    rooms = [
        r for r in pq.read_table(data_dir / ROOMS_FILE).to_pylist() if r["room_id"] in rooms_val
    ]
    requests = [
        EvalRequest(
            room_id=room["room_id"],
            room_type=room["room_type"],
            room_path=room["path"],
            category=category,
            query=category_query(category, cfg.index.vocabulary),
        )
        for room in sorted(rooms, key=lambda r: r["room_id"])
        for category in categories
    ]
    return EvalSet(requests, frozenset(train), "teacher")


def choose_ordering(cfg: MarsConfig, adapter: str) -> tuple[Ordering, dict[str, float]]:
    """The best ordering of `ORDERINGS` for `adapter` on validation rooms, and each one's
    nDCG@10 there (keyed by a tag-safe name)."""
    val_set = validation_set(cfg)
    run = Configuration(["bm25", "siglip", "agent"], adapter)
    run_cfg = configured(cfg, run)
    run_cfg = dataclasses.replace(
        run_cfg,
        funnel=dataclasses.replace(
            run_cfg.funnel, k3=cfg.funnel.k2, order=AGENT, siglip_blend=0.0, rationale_top_n=0
        ),
    )
    judge, close = teacher_judge(cfg)
    judged: list[tuple[EvalRequest, list[Candidate]]] = []
    try:
        with build_funnel(run_cfg) as funnel:
            narrow_to_test_split(funnel, val_set.test_keys, cfg.eval.overfetch)
            for request, found in searched(funnel, val_set, cfg, "validation orderings", []):
                scores = judge(request, found.results) if found.results else []
                grades = {
                    c.key: teacher_grade(s, cfg.eval.fit_threshold)
                    for c, s in zip(found.results, scores, strict=True)
                }
                judged.append((dataclasses.replace(request, grades=grades), found.results))
    finally:
        close()
    values = {}
    for order, blend in ORDERINGS:
        ordering = Ordering(order, blend, cfg.funnel.min_fit_score, "validation")
        ranked = [ranked_by_ordering(r, found, ordering, cfg.funnel.k3) for r, found in judged]
        values[ordering] = ranking_measures(ranked, [MEASURE])[MEASURE]
    best = max(values, key=lambda o: values[o])  # the first of equals: tie-break order
    return best, {_slug(o): v for o, v in values.items()}


def record_ordering(model: str, version: int, ordering: Ordering, values: dict[str, float]) -> None:
    """The choice as the version's tags, with what each candidate ordering scored."""
    tags = {ORDER_TAG: ordering.order, BLEND_TAG: ordering.siglip_blend}
    tags |= {f"validation.{metric_key(MEASURE)}.{name}": f"{v:.4f}" for name, v in values.items()}
    describe_version(model, version, tags=tags)


def _slug(ordering: Ordering) -> str:
    """A tag-safe name of an ordering: `fits_by_siglip`, `agent`, `agent_blend_0.25`."""
    blend = f"_blend_{ordering.siglip_blend:g}" if ordering.siglip_blend else ""
    return f"{ordering.order}{blend}"


def ranked_by_ordering(
    request: EvalRequest, candidates: list[Candidate], ordering: Ordering, k: int
) -> RankedRequest:
    """The list `ordering` makes of a request's scored candidates, as the funnel shows it."""
    agent = {c.key: c.scores["agent"] for c in candidates}
    visual = {c.key: c.scores["siglip"] for c in candidates if "siglip" in c.scores}
    key = ordering.final(agent, visual)
    top = sorted(candidates, key=lambda c: key[c.key], reverse=True)[:k]
    shown, nothing_fits = presented(top, [agent[c.key] for c in top], ordering.min_fit_score)
    return ranked_request(request, shown, nothing_fits)
