"""Our metrics on hand-made runs: ir-measures' numbers, a hand-computed nDCG, abstention."""

from __future__ import annotations

import math

import ir_measures
import pytest

from mars_core.evaluation.ablation import Configuration, ConfigurationResult
from mars_core.evaluation.metrics import (
    RankedRequest,
    abstention,
    all_metrics,
    category_precision,
    context_violation,
    ranking_measures,
)
from mars_core.evaluation.promotion import decide
from mars_core.evaluation.requests import EvalRequest


def request(room: str, category: str, grades: dict[str, int]) -> EvalRequest:
    return EvalRequest(room, "bedroom", f"/{room}.png", category, category.lower(), grades)


def ranked(req: EvalRequest, keys: list[str], nothing_fits: bool = False, cats=None):
    return RankedRequest(req, keys, cats or [req.category] * len(keys), nothing_fits)


BED = request("r1", "BED", {"a": 3, "b": 0, "c": 1, "d": 0})
LAMP = request("r1", "LAMP", {"x": 2, "y": 0})
POOL_BED = request("pool", "BED", {"a": 0, "b": 0})  # nothing fits
RUN = [ranked(BED, ["b", "a", "e", "c"]), ranked(LAMP, ["x", "y"]), ranked(POOL_BED, ["a"], True)]


def test_ranking_measures_equal_the_library_and_a_hand_computed_ndcg():
    measures = ["nDCG@10", "R@5", "R@20", "RR"]
    ours = ranking_measures(RUN, measures, abstention_aware=False)
    qrels = [ir_measures.Qrel(r.request_id, k, g) for r in (BED, LAMP) for k, g in r.grades.items()]
    order = {BED.request_id: ["b", "a", "e", "c"], LAMP.request_id: ["x", "y"]}
    run = [
        ir_measures.ScoredDoc(qid, key, float(len(keys) - rank))
        for qid, keys in order.items()
        for rank, key in enumerate(keys)
    ]
    parsed = [ir_measures.parse_measure(m) for m in measures]
    library = ir_measures.calc_aggregate(parsed, qrels, run)
    assert ours == pytest.approx({m: library[ir_measures.parse_measure(m)] for m in measures})
    # BED: gains 0, 3, (unjudged), 1 at ranks 1..4; ideal 3, 1. LAMP: perfect.
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 + 1 / math.log2(3)
    assert ours["nDCG@10"] == pytest.approx((dcg / ideal + 1.0) / 2)
    assert ours["RR"] == pytest.approx((1 / 2 + 1) / 2)  # the no-fit request is not averaged


def test_saying_nothing_fits_is_the_judged_answer_of_a_no_fit_request():
    bed_ndcg = ranking_measures(RUN[:1], ["nDCG@10"], abstention_aware=False)["nDCG@10"]
    # LAMP perfect, POOL_BED abstained: the judged answer comes first.
    ours = ranking_measures(RUN, ["nDCG@10", "RR"])
    assert ours["nDCG@10"] == pytest.approx((bed_ndcg + 1.0 + 1.0) / 3)
    listed = [*RUN[:2], ranked(POOL_BED, ["a"], nothing_fits=False)]
    assert ranking_measures(listed, ["nDCG@10"])["nDCG@10"] == pytest.approx((bed_ndcg + 1) / 3)
    # A wrong abstention on LAMP pushes its perfect result to rank 2.
    wrong = [ranked(LAMP, ["x", "y"], nothing_fits=True)]
    assert ranking_measures(wrong, ["RR"])["RR"] == pytest.approx(1 / 2)


def test_context_violation_and_category_precision_count_the_top_k():
    # POOL_BED abstains: it presents no matches, so no violation.
    assert context_violation(RUN, 2) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    listed = [ranked(POOL_BED, ["a", "b"], nothing_fits=False)]
    assert context_violation(listed, 2) == pytest.approx(1.0)
    mixed = [ranked(BED, ["a", "x"], cats=["BED", "LAMP"])]
    assert category_precision(mixed, 2) == pytest.approx(0.5)
    assert category_precision(mixed, 1) == pytest.approx(1.0)


def test_abstention_counts_no_fit_and_answerable_requests_apart():
    hand = [
        ranked(POOL_BED, ["a"], nothing_fits=True),
        ranked(request("pool", "SOFA", {"s": 0}), ["s"], nothing_fits=False),
        ranked(BED, ["a"], nothing_fits=True),
        ranked(LAMP, ["x"], nothing_fits=False),
        ranked(request("r2", "BED", {"a": 2}), ["a"], nothing_fits=False),
    ]
    assert abstention(hand) == {"abstain_nofit": 0.5, "abstain_answerable": pytest.approx(1 / 3)}
    keys = set(all_metrics(hand, ["nDCG@10", "R@5"], [5]))
    assert {"nDCG_at_10", "R_at_5", "context_violation_at_5", "abstain_nofit"} <= keys
    assert {"answerable.nDCG_at_10", "answerable.R_at_5"} <= keys


def result(stages, adapter, ndcg):
    return ConfigurationResult(Configuration(stages, adapter), {"nDCG_at_10": ndcg}, [])


@pytest.mark.parametrize(("candidate", "promoted"), [(0.50, False), (0.60, False), (0.62, True)])
def test_promotion_needs_the_margin_over_the_best_configuration_without_agent(candidate, promoted):
    results = [
        result(["bm25"], None, 0.40),
        result(["bm25", "siglip"], None, 0.60),
        result(["bm25", "siglip", "agent"], None, 0.30),
        result(["bm25", "siglip", "agent"], "models:/mars-student@candidate", candidate),
    ]
    decision = decide(
        results, model="mars-student", primary_metric="nDCG@10", margin=0.02,
        candidate_version=1, champion_version=None,
    )  # fmt: skip
    assert decision.promoted is promoted
    assert decision.baseline == "bm25+siglip" and decision.baseline_value == 0.60
    assert decision.candidate_value == candidate


def test_a_champion_is_the_baseline_when_there_is_one():
    results = [
        result(["bm25"], None, 0.9),
        result(["bm25", "siglip", "agent"], "models:/mars-student@champion", 0.5),
        result(["bm25", "siglip", "agent"], "models:/mars-student@candidate", 0.45),
    ]
    decision = decide(
        results, model="mars-student", primary_metric="nDCG@10", margin=0.0,
        candidate_version=2, champion_version=1,
    )  # fmt: skip
    assert not decision.promoted and decision.baseline.endswith("@champion")
