"""Metrics of one configuration over the evaluation set.

Ranking quality comes from ir-measures (nDCG@10, R@5, R@20, RR, graded as judged) and counts
saying "nothing fits" as an answer: a request with no fitting product is judged with one
relevant answer, `ABSTAIN`, which a configuration returns first when it abstains (and which is
not relevant anywhere else). So a funnel that lists beds for a pool photo scores 0 on that
request, one that says nothing fits scores 1, and a wrong abstention on an answerable request
pushes its real results down a rank. The same measures over answerable requests only, the
usual reading, are logged as `answerable.<measure>`. The rest are ours, defined in
docs/evaluation.md:

* `context_violation@k`: share of the top k presented as matches that are misfits for the room
  (judged grade 0); a request where MARS says nothing fits presents none;
* `abstain_nofit`: share of requests with no fitting product where MARS says nothing fits;
* `abstain_answerable`: share of requests with a fitting product where it wrongly does;
* `category_precision@k`: share of the top k whose category is the one asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ir_measures

from mars_core.evaluation.requests import EvalRequest

# The judged answer of a request with no fitting product: saying that nothing fits.
ABSTAIN = "<nothing fits>"


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


def ranking_measures(
    ranked: list[RankedRequest], measures: list[str], *, abstention_aware: bool = True
) -> dict[str, float]:
    """ir-measures' mean of each measure: over every request with `ABSTAIN` judged as the
    answer to no-fit requests, or (`abstention_aware=False`) over answerable requests only."""
    parsed = [ir_measures.parse_measure(name) for name in measures]
    judged = ranked if abstention_aware else [r for r in ranked if r.request.answerable]
    qrels = [qrel for r in judged for qrel in _qrels(r, abstention_aware)]
    run = [doc for r in judged for doc in _run(r, abstention_aware)]
    if not qrels or not run:
        return {name: 0.0 for name in measures}
    values = ir_measures.calc_aggregate(parsed, qrels, run)
    return {
        name: float(values.get(measure, 0.0))
        for name, measure in zip(measures, parsed, strict=True)
    }


def _qrels(r: RankedRequest, abstention_aware: bool) -> list[ir_measures.Qrel]:
    qid = r.request.request_id
    if abstention_aware and not r.request.answerable:
        return [ir_measures.Qrel(qid, ABSTAIN, 1)]
    return [ir_measures.Qrel(qid, key, grade) for key, grade in r.request.grades.items()]


def _run(r: RankedRequest, abstention_aware: bool) -> list[ir_measures.ScoredDoc]:
    keys = [ABSTAIN, *r.keys] if abstention_aware and r.nothing_fits else r.keys
    qid = r.request.request_id
    return [
        ir_measures.ScoredDoc(qid, key, float(len(keys) - rank)) for rank, key in enumerate(keys)
    ]


def context_violation(ranked: list[RankedRequest], k: int) -> float:
    """Mean share of judged misfits (grade 0) among the top k each request presents as
    matches: none when MARS says nothing fits (it shows closest options, not matches)."""
    shares = [
        0.0
        if r.nothing_fits
        else sum(r.request.grades.get(key) == 0 for key in r.keys[:k]) / len(r.keys[:k])
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
    answerable = ranking_measures(ranked, measures, abstention_aware=False)
    metrics |= {f"answerable.{metric_key(name)}": value for name, value in answerable.items()}
    for k in ks:
        metrics[f"context_violation_at_{k}"] = context_violation(ranked, k)
        metrics[f"category_precision_at_{k}"] = category_precision(ranked, k)
    metrics |= abstention(ranked)
    metrics["requests"] = float(len(ranked))
    metrics["answerable"] = float(sum(r.request.answerable for r in ranked))
    return metrics


def _mean(values: list[float] | list[bool]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
