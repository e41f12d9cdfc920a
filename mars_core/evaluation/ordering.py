"""Choose, on validation rooms, the candidate student's operating point: how its agent and
SigLIP combine, and the score from which it calls a product a fit.

The requests are SFT's own validation rooms searched over its validation products only
(`catalogue.splits.validation_split`: `train.val_fraction`, `train.val_product_fraction`,
`train.seed`), pairs the student never trained on, while the test split stays unseen. A
ground truth is never read: every candidate is judged by the teacher (as
`evaluation/reference.py` asks it), graded as held-out labels are. The agent scores each
request once; every ordering of `ORDERINGS` at every fit bar of `eval.min_fit_scores` is
then applied to those same scores. Among the points whose context violation@5 is within
`eval.max_violation` (a student's scores are its own scale: one seed's 0.5 is another's 0.65)
and whose abstention on answerable requests is within `eval.max_abstain_answerable` (a bar
set too high says "nothing fits" where something does: a student that met few rooms scores
their fits lower), those within `eval.ndcg_tolerance` of the best abstention-aware nDCG@10 are
equals and the lowest violation among them wins; where no point keeps both bounds, the
violation bound alone decides; where none keeps that either, the lowest violation. The
student's own order within fits (`agent`, alone or blended) wins where its graded score ranks
the teacher's better fits higher on validation (with `teacher.colour_harmony` the metadata
teacher grades colour among fits); a tie goes to the earlier point: `fits_by_siglip` first,
since stage 2 measured a visual similarity the teacher never judged, then the lower bar. The
choice is recorded as the version's tags (`funnel.order`, `funnel.siglip_blend`,
`funnel.min_fit_score`), which the funnel reads whenever that version serves with
`funnel.order=auto`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from mars_core.agent.ordering import (
    BLEND_TAG,
    BY_AGENT,
    FIT_TAG,
    FITS_BY_SIGLIP,
    ORDER_TAG,
    Ordering,
)
from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.catalogue.splits import validation_split
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import (
    Configuration,
    agent_stage,
    configured,
    narrow_to_test_split,
    ranked_request,
    searched,
)
from mars_core.evaluation.metrics import (
    RankedRequest,
    abstention,
    all_metrics,
    context_violation,
    ranking_measures,
)
from mars_core.evaluation.reference import teacher_judge
from mars_core.evaluation.requests import EvalRequest, EvalSet, teacher_grade
from mars_core.funnel.stages import AGENT, BM25, SIGLIP, build_funnel
from mars_core.index.vocabulary import category_query
from mars_core.infra.registry import describe_version
from mars_core.search.funnel import SearchFunnel
from mars_core.search.types import Candidate, presented
from mars_core.teacher.schema import LABELS_FILE

# (order, siglip_blend) candidates, in tie-break order.
ORDERINGS = ((FITS_BY_SIGLIP, 0.0), (BY_AGENT, 0.0), (BY_AGENT, 0.25), (BY_AGENT, 0.5))
# The funnel a student serves in: every stage, the agent last.
STUDENT_FUNNEL = (BM25, SIGLIP, AGENT)
MEASURE = "nDCG@10"
VIOLATION_K = 5  # the violation the bound is on: context violation@5, as the targets say
VIOLATION = f"context_violation_at_{VIOLATION_K}"
ABSTAIN = "abstain_answerable"


def validation_set(cfg: MarsConfig) -> EvalSet:
    """SFT's validation rooms x the categories of its validation products, searched over
    those products only, ungraded (judged later)."""
    data_dir = Path(cfg.data.out_dir)
    labels = pq.read_table(data_dir / LABELS_FILE, columns=["room_id", "key", "status"])
    catalogue = pq.read_table(data_dir / CATALOGUE_FILE)
    held_out = validation_split(
        ((row["room_id"], row["key"]) for row in labels.to_pylist() if row["status"] == "ok"),
        catalogue,
        cfg.train.val_fraction,
        cfg.train.val_product_fraction,
        cfg.train.seed,
    )
    columns = (catalogue["key"].to_pylist(), catalogue["category"].to_pylist())
    pairs = zip(*columns, strict=True)
    categories = sorted({category for key, category in pairs if key in held_out.products})
    rooms = pq.read_table(data_dir / ROOMS_FILE).to_pylist()
    rooms = [room for room in rooms if room["room_id"] in held_out.rooms]
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
    return EvalSet(requests, held_out.products, "teacher")


@dataclass(frozen=True)
class ValidationChoice:
    """The operating point chosen on validation, what every point measured there (nDCG@10
    and violation@5: the grid, an artifact of the student's run), and every metric of the
    chosen point (the student's validation metrics)."""

    ordering: Ordering
    points: dict[Ordering, dict[str, float]]
    metrics: dict[str, float]

    def grid_table(self) -> str:
        """The grid as a markdown table, the chosen point marked."""
        lines = [
            f"| ordering | fit bar | {MEASURE} | {VIOLATION} | {ABSTAIN} | chosen |",
            "|---|---:|---:|---:|---:|:-:|",
        ]
        for point, measured in self.points.items():
            mark = "yes" if point == self.ordering else ""
            lines.append(
                f"| {_order_name(point)} | {point.min_fit_score:g} | {measured[MEASURE]:.4f} | "
                f"{measured[VIOLATION]:.4f} | {measured[ABSTAIN]:.4f} | {mark} |"
            )
        return "\n".join(lines) + "\n"


def choose_ordering(cfg: MarsConfig, adapter: str) -> ValidationChoice:
    """The best operating point for `adapter` on validation rooms, what each candidate point
    measured there and every metric of the chosen one."""
    judged = _judged_validation(cfg, adapter)
    points, ranked = {}, {}
    for order, blend in ORDERINGS:
        for bar in cfg.eval.min_fit_scores:
            ordering = Ordering(order, blend, bar, "validation")
            ranked[ordering] = [
                ranked_by_ordering(r, found, ordering, cfg.funnel.k3) for r, found in judged
            ]
            points[ordering] = {
                MEASURE: ranking_measures(ranked[ordering], [MEASURE])[MEASURE],
                VIOLATION: context_violation(ranked[ordering], VIOLATION_K),
                ABSTAIN: abstention(ranked[ordering])[ABSTAIN],
            }
    best = best_point(
        points, cfg.eval.max_violation, cfg.eval.ndcg_tolerance, cfg.eval.max_abstain_answerable
    )
    metrics = all_metrics(ranked[best], cfg.eval.measures, cfg.eval.ks)
    return ValidationChoice(best, points, metrics)


def _judged_validation(cfg: MarsConfig, adapter: str) -> list[tuple[EvalRequest, list[Candidate]]]:
    """Every validation request scored once by the student, its candidates graded by the
    teacher."""
    val_set = validation_set(cfg)
    judge, close = teacher_judge(cfg)
    judged: list[tuple[EvalRequest, list[Candidate]]] = []
    try:
        with scoring_funnel(cfg, adapter, val_set.test_keys) as funnel:
            for request, found in searched(funnel, val_set, cfg, "validation orderings", []):
                scores = judge(request, found.results) if found.results else []
                grades = {
                    c.key: teacher_grade(s, cfg.eval.fit_threshold)
                    for c, s in zip(found.results, scores, strict=True)
                }
                judged.append((dataclasses.replace(request, grades=grades), found.results))
    finally:
        close()
    return judged


@contextmanager
def scoring_funnel(cfg: MarsConfig, adapter: str, keys: frozenset[str]) -> Iterator[SearchFunnel]:
    """The funnel of one scoring pass that every operating point is then applied to: stage 3
    keeps all of stage 2's candidates (over `keys` only) with their agent and SigLIP scores
    and presents every one (no fit bar, so no alternatives either): each point cuts its own."""
    run_cfg = configured(cfg, Configuration(list(STUDENT_FUNNEL), adapter))
    run_cfg = dataclasses.replace(
        run_cfg,
        funnel=dataclasses.replace(
            run_cfg.funnel, k3=cfg.funnel.k2, order=BY_AGENT, siglip_blend=0.0
        ),
    )
    with build_funnel(run_cfg) as funnel:
        narrow_to_test_split(funnel, keys, cfg.eval.overfetch)
        agent = agent_stage(funnel)
        agent.ordering = dataclasses.replace(agent.ordering, min_fit_score=0.0)
        funnel.beyond = None
        yield funnel


def best_point(
    points: dict[Ordering, dict[str, float]],
    max_violation: float,
    tolerance: float,
    max_abstain: float = 1.0,
) -> Ordering:
    """Among the points within the violation and answerable-abstention bounds (else within the
    violation bound alone), those within `tolerance` of the best nDCG@10 are equals, and the
    lowest violation among them wins (the first of equals: the points come in tie-break
    order); where none is within the violation bound, the lowest violation, then nDCG@10."""
    within = [point for point, m in points.items() if m[VIOLATION] <= max_violation]
    both = [point for point in within if points[point].get(ABSTAIN, 0.0) <= max_abstain]
    within = both or within
    if within:
        best = max(points[point][MEASURE] for point in within)
        equals = [point for point in within if points[point][MEASURE] >= best - tolerance]
        return min(equals, key=lambda point: points[point][VIOLATION])
    return min(points, key=lambda point: (points[point][VIOLATION], -points[point][MEASURE]))


def record_ordering(model: str, version: int, ordering: Ordering) -> None:
    """The choice as the version's tags, which the funnel reads when it serves the version
    (the grid it was chosen from is an artifact of the student's run)."""
    tags = {ORDER_TAG: ordering.order, BLEND_TAG: ordering.siglip_blend}
    describe_version(model, version, tags=tags | {FIT_TAG: ordering.min_fit_score})


def _order_name(ordering: Ordering) -> str:
    """`fits_by_siglip`, `agent`, `agent blend 0.25`."""
    blend = f" blend {ordering.siglip_blend:g}" if ordering.siglip_blend else ""
    return f"{ordering.order}{blend}"


def ranked_by_ordering(
    request: EvalRequest, candidates: list[Candidate], ordering: Ordering, k: int
) -> RankedRequest:
    """The list `ordering` makes of a request's scored candidates, as the funnel shows it."""
    agent = {c.key: c.scores[AGENT] for c in candidates}
    visual = {c.key: c.scores[SIGLIP] for c in candidates if SIGLIP in c.scores}
    key = ordering.final(agent, visual)
    top = sorted(candidates, key=lambda c: key[c.key], reverse=True)[:k]
    shown, nothing_fits = presented(top, [agent[c.key] for c in top], ordering.min_fit_score)
    return ranked_request(request, shown, nothing_fits)
