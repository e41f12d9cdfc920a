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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Reference:
    """A reference row: its name, the judge that ranks its candidates, and who that is."""

    name: str
    judge: Judge
    ranker: str  # the table's `ranked by`


def reference_rows(cfg: MarsConfig, eval_set: EvalSet) -> list[ConfigurationResult]:
    """The teacher's row and the ceilings' rows, where the set is judged by ground truth."""
    if eval_set.source != "ground_truth":
        return []
    judge, close = teacher_judge(cfg)
    try:
        return run_references(
            cfg,
            eval_set,
            [
                Reference(f"teacher:{cfg.teacher.name}", judge, "teacher's labels"),
                Reference(FIT_KNOWN, truth_judge, "truth: fit"),
                Reference(FIT_AND_COLOUR_KNOWN, truth_colour_judge, "truth: fit, colour"),
            ],
        )
    finally:
        close()


def run_references(
    cfg: MarsConfig, eval_set: EvalSet, references: list[Reference]
) -> list[ConfigurationResult]:
    """Search every request once with stage 2; each reference ranks those same candidates by
    its judge, cuts them to k3 and abstains as the agent does."""
    stage2_cfg = configured(cfg, Configuration(list(STAGE2)))
    stage2_cfg = dataclasses.replace(
        stage2_cfg, funnel=dataclasses.replace(stage2_cfg.funnel, k3=cfg.funnel.k2)
    )
    ranked: dict[str, list[RankedRequest]] = {r.name: [] for r in references}
    agree: dict[str, list[bool]] = {r.name: [] for r in references}
    failed: list[tuple[str, str]] = []
    with build_funnel(stage2_cfg) as funnel:
        narrow_to_test_split(funnel, eval_set.test_keys, cfg.eval.overfetch)
        for request, found in searched(funnel, eval_set, cfg, "reference rows", failed):
            for reference in references:
                scores = reference.judge(request, found.results) if found.results else []
                ranked[reference.name].append(_ranked(cfg, request, found.results, scores))
                agree[reference.name] += [
                    (score >= cfg.eval.fit_threshold) == (request.grades[c.key] > 0)
                    for c, score in zip(found.results, scores, strict=True)
                    if c.key in request.grades
                ]
    results = []
    for reference in references:
        metrics = all_metrics(ranked[reference.name], cfg.eval.measures, cfg.eval.ks)
        metrics["failed_requests"] = float(len(failed))
        judged = agree[reference.name]
        metrics["fit_agreement"] = sum(judged) / len(judged) if judged else 0.0
        configuration = Configuration(
            list(STAGE2), reference=reference.name, ranker=reference.ranker
        )
        results.append(
            ConfigurationResult(configuration, metrics, ranked[reference.name], failed=list(failed))
        )
    return results


def _ranked(
    cfg: MarsConfig, request: EvalRequest, candidates: list[Candidate], scores: list[float]
) -> RankedRequest:
    """The candidates by score (stage 2's order breaks ties), cut to k3, presented as the
    agent presents its own."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: cfg.funnel.k3]
    kept, abstain = presented(
        [candidates[i] for i in order], [scores[i] for i in order], cfg.funnel.min_fit_score
    )
    return ranked_request(request, kept, abstain)


def add_ceiling_gaps(results: list[ConfigurationResult], metric: str) -> None:
    """`ceiling_gap` on every agent configuration: the fit-known row's `metric` minus its own."""
    ceiling = next((r for r in results if r.configuration.reference == FIT_KNOWN), None)
    if ceiling is None:
        return
    for result in results:
        if result.configuration.has_agent:
            result.metrics["ceiling_gap"] = ceiling.metrics[metric] - result.metrics[metric]
