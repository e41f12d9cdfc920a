"""Reference rows of the evaluation table: judges that rank stage 2's candidates as if they
were the agent, so a reader sees the ceiling the student can reach.

* the teacher itself (`teacher:<name>`): the labels the student learns from, asked about
  every candidate [bm25, siglip] hands on, ordered by its score (stage 2's order breaks
  ties), presented as the agent presents its own (`search.types.presented`: the fits,
  or the closest options when nothing fits);
* `fit known`: the truth's fit decision with stage 2's order within fits, the ceiling of a
  student that learns fit perfectly and nothing else about order (`ceiling_gap` of a
  configuration is how far its nDCG@10 is below it);
* `fit and colour known`: the truth's fit decision, then among fits those whose colour matches
  the room's first, stage 2's order within each: the ceiling of a student that learns fit and
  colour harmony (what the offline teacher judges) and nothing of style.

Its fit agreement with the ground truth (`fit_agreement`: share of judged candidates whose
score says fits exactly when the truth does) is a column of its own. These rows run only where
ground truth exists: judged by the teacher, the teacher's row would agree with itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from mars_core.catalogue.schema import CATALOGUE_FILE
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import (
    Configuration,
    ConfigurationResult,
    configured,
    narrow_to_test_split,
    ranked_request,
    searched,
)
from mars_core.evaluation.metrics import RankedRequest, all_metrics
from mars_core.evaluation.requests import EvalRequest, EvalSet
from mars_core.funnel.stages import BM25, SIGLIP, build_funnel
from mars_core.search.types import Candidate, presented
from mars_core.teacher.base import LabelRequest
from mars_core.teacher.labelling import build_teacher

STAGE2 = [BM25, SIGLIP]

# Scores of a request's candidates (stage 2's order in, one score each out).
Judge = Callable[[EvalRequest, list[Candidate]], list[float]]


def teacher_judge(cfg: MarsConfig) -> tuple[Judge, Callable[[], None]]:
    """The configured teacher as a judge, and how to release it. It reads each candidate's
    whole catalogue row, as labelling does (a search hit carries only the fields the stages
    read: no keywords, no description)."""
    teacher = build_teacher(cfg.teacher, Path(cfg.paths.models), cfg.data.max_image_pixels)
    rows = pq.read_table(Path(cfg.data.out_dir) / CATALOGUE_FILE).to_pylist()
    catalogue = {row["key"]: row for row in rows}

    def judge(request: EvalRequest, candidates: list[Candidate]) -> list[float]:
        pair = {"room_id": request.room_id, "room_type": request.room_type, "query": request.query}
        labels = teacher.label(
            [
                LabelRequest(pair | {"key": c.key}, request.room_path, catalogue[c.key])
                for c in candidates
            ]
        )
        return [0.0 if label.score is None else label.score for label in labels]

    return judge, teacher.close


FIT_KNOWN = "fit known"
FIT_AND_COLOUR_KNOWN = "fit and colour known"


def truth_judge(request: EvalRequest, candidates: list[Candidate]) -> list[float]:
    """1 for a candidate the truth says fits, else 0: stage 2's order stays within each."""
    return [1.0 if request.grades.get(c.key, 0) > 0 else 0.0 for c in candidates]


def truth_colour_judge(request: EvalRequest, candidates: list[Candidate]) -> list[float]:
    """`truth_judge`, plus 1 for a fit whose colour the truth says matches the room's."""
    return [
        fit + (fit > 0 and c.key in request.colour_matches)
        for fit, c in zip(truth_judge(request, candidates), candidates, strict=True)
    ]


def reference_rows(cfg: MarsConfig, eval_set: EvalSet) -> list[ConfigurationResult]:
    """The teacher's row and the fit-known row, where the set is judged by ground truth."""
    if eval_set.source != "ground_truth":
        return []
    judge, close = teacher_judge(cfg)
    try:
        teacher = run_reference(
            cfg, eval_set, f"teacher:{cfg.teacher.name}", judge, "teacher's labels"
        )
    finally:
        close()
    return [
        teacher,
        run_reference(cfg, eval_set, FIT_KNOWN, truth_judge, "truth: fit"),
        run_reference(
            cfg, eval_set, FIT_AND_COLOUR_KNOWN, truth_colour_judge, "truth: fit, colour"
        ),
    ]


def run_reference(
    cfg: MarsConfig, eval_set: EvalSet, name: str, judge: Judge, ranker: str
) -> ConfigurationResult:
    """Rank every request's stage-2 candidates by `judge`, cut to k3, abstain as the agent."""
    configuration = Configuration(list(STAGE2), reference=name, ranker=ranker)
    stage2_cfg = configured(cfg, configuration)
    stage2_cfg = dataclasses.replace(
        stage2_cfg, funnel=dataclasses.replace(stage2_cfg.funnel, k3=cfg.funnel.k2)
    )
    ranked: list[RankedRequest] = []
    failed: list[tuple[str, str]] = []
    agree: list[bool] = []
    with build_funnel(stage2_cfg) as funnel:
        narrow_to_test_split(funnel, eval_set.test_keys, cfg.eval.overfetch)
        for request, found in searched(funnel, eval_set, cfg, name, failed):
            scores = judge(request, found.results) if found.results else []
            order = sorted(range(len(scores)), key=lambda i: -scores[i])[: cfg.funnel.k3]
            kept, abstain = presented(
                [found.results[i] for i in order],
                [scores[i] for i in order],
                cfg.funnel.min_fit_score,
            )
            ranked.append(ranked_request(request, kept, abstain))
            agree += [
                (score >= cfg.eval.fit_threshold) == (request.grades[c.key] > 0)
                for c, score in zip(found.results, scores, strict=True)
                if c.key in request.grades
            ]
    metrics = all_metrics(ranked, cfg.eval.measures, cfg.eval.ks)
    metrics["failed_requests"] = float(len(failed))
    metrics["fit_agreement"] = sum(agree) / len(agree) if agree else 0.0
    return ConfigurationResult(configuration, metrics, ranked, failed=failed)


def add_ceiling_gaps(results: list[ConfigurationResult], metric: str) -> None:
    """`ceiling_gap` on every agent configuration: the fit-known row's `metric` minus its own."""
    ceiling = next((r for r in results if r.configuration.reference == FIT_KNOWN), None)
    if ceiling is None:
        return
    for result in results:
        if result.configuration.has_agent:
            result.metrics["ceiling_gap"] = ceiling.metrics[metric] - result.metrics[metric]
