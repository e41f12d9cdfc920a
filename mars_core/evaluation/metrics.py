"""Metrics of one configuration over the evaluation set.

Ranking quality comes from ir-measures (nDCG@10, R@5, R@20, RR, graded as judged); the rest
are ours, defined in the README:

* `context_violation@k`: share of the top k that are misfits for the room (judged grade 0),
  over requests with at least one result;
* `abstain_nofit`: share of requests with no fitting product where MARS says nothing fits;
* `abstain_answerable`: share of requests with a fitting product where it wrongly does;
* `category_precision@k`: share of the top k whose category is the one asked for.

Ranking measures are averaged over answerable requests only: a list of misfits is neither a
good nor a bad ranking, and what MARS should do there is abstain, which is measured apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ir_measures

from mars_core.evaluation.requests import EvalRequest


@dataclass(frozen=True)
class RankedRequest:
    """What one configuration returned for one request: keys best first, their categories."""

    request: EvalRequest
    keys: list[str]
    categories: list[str]
    nothing_fits: bool


def metric_key(name: str) -> str:
    """An MLflow-safe metric name: `nDCG@10` -> `nDCG_at_10`."""
    return re.sub(r"[^\w.\- /]", "_", name.replace("@", "_at_"))


def ranking_measures(ranked: list[RankedRequest], measures: list[str]) -> dict[str, float]:
    """ir-measures' mean of each measure over the answerable requests (0 when there are none)."""
    parsed = [ir_measures.parse_measure(name) for name in measures]
    answerable = [r for r in ranked if r.request.answerable]
    qrels = [
        ir_measures.Qrel(r.request.request_id, key, grade)
        for r in answerable
        for key, grade in r.request.grades.items()
    ]
    run = [
        ir_measures.ScoredDoc(r.request.request_id, key, float(len(r.keys) - rank))
        for r in answerable
        for rank, key in enumerate(r.keys)
    ]
    if not qrels or not run:
        return {name: 0.0 for name in measures}
    values = ir_measures.calc_aggregate(parsed, qrels, run)
    return {
        name: float(values.get(measure, 0.0))
        for name, measure in zip(measures, parsed, strict=True)
    }


def context_violation(ranked: list[RankedRequest], k: int) -> float:
    """Mean share of judged misfits (grade 0) among each non-empty list's top k."""
    shares = [
        sum(r.request.grades.get(key) == 0 for key in r.keys[:k]) / len(r.keys[:k])
        for r in ranked
        if r.keys
    ]
    return _mean(shares)


def category_precision(ranked: list[RankedRequest], k: int) -> float:
    """Mean share of each non-empty list's top k that is of the asked category."""
    shares = [
        sum(c == r.request.category for c in r.categories[:k]) / len(r.categories[:k])
        for r in ranked
        if r.categories
    ]
    return _mean(shares)


def abstention(ranked: list[RankedRequest]) -> dict[str, float]:
    """How often MARS says nothing fits, split by whether something did."""
    nofit = [r.nothing_fits for r in ranked if not r.request.answerable]
    answerable = [r.nothing_fits for r in ranked if r.request.answerable]
    return {"abstain_nofit": _mean(nofit), "abstain_answerable": _mean(answerable)}


def all_metrics(
    ranked: list[RankedRequest], measures: list[str], ks: list[int]
) -> dict[str, float]:
    """Every metric of one configuration, keyed by its MLflow name."""
    metrics = {
        metric_key(name): value for name, value in ranking_measures(ranked, measures).items()
    }
    for k in ks:
        metrics[f"context_violation_at_{k}"] = context_violation(ranked, k)
        metrics[f"category_precision_at_{k}"] = category_precision(ranked, k)
    metrics |= abstention(ranked)
    metrics["requests"] = float(len(ranked))
    metrics["answerable"] = float(sum(r.request.answerable for r in ranked))
    return metrics


def _mean(values: list[float] | list[bool]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
