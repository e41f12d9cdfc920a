"""Config of the `eval` group: evaluation on held-out rooms and products, and promotion."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob


@dataclass
class EvalConfig:
    """Evaluation on held-out rooms and products: stage ablations, adapters, promotion."""

    name: str = knob("tiny", "label for logs and MLflow")
    measures: list[str] = knob(
        ["nDCG@10", "R@5", "R@20", "RR"], "ranking measures, as ir-measures names them"
    )
    ks: list[int] = knob([5, 10], "cut-offs of context_violation@k and category_precision@k")
    ablations: list[list[str]] = knob(
        [["bm25"], ["bm25", "siglip"], ["bm25", "siglip", "agent"]],
        "funnel variants to compare, each a list of stage names (as funnel.stages)",
    )
    adapters: list[str] = knob(
        [], "adapters to run every agent variant with too: folders or models:/mars-student@alias"
    )
    max_queries: int = knob(0, "evaluate at most this many (room, query) requests; 0 = all", ge=0)
    overfetch: int = knob(8, "stage 1 fetches k1 x this many, then keeps test-split products", ge=1)
    fit_threshold: float = knob(
        0.5, "a teacher or student score from here on means 'fits'", gt=0, lt=1
    )
    min_fit_scores: list[float] = knob(
        [0.5, 0.55, 0.6, 0.65, 0.7],
        "fit bars (funnel.min_fit_score) a candidate student version is chosen with on "
        "validation rooms, together with its ordering",
    )
    max_violation: float = knob(
        0.05,
        "the chosen ordering and fit bar keep context violation@5 on validation rooms at or "
        "under this (the best nDCG@10 among those that do; the lowest violation if none does)",
        ge=0,
        le=1,
    )
    max_abstain_answerable: float = knob(
        0.1,
        "the chosen ordering and fit bar also keep abstention on answerable validation requests "
        "at or under this, where some point within the violation bound does (a bar too high "
        "says nothing fits where something does)",
        ge=0,
        le=1,
    )
    ndcg_tolerance: float = knob(
        0.01,
        "operating points within the violation bound whose validation nDCG@10 is within this "
        "of the best count as equal, and the lowest violation among them wins: a few hundred "
        "validation requests cannot tell them apart, and a lower violation holds on new rooms",
        ge=0,
        le=1,
    )
    max_pairs: int = knob(64, "held-out pairs scored for student vs teacher (0 = skip)", ge=0)
    reliability_bins: int = knob(10, "bins of the reliability diagram (student vs teacher)", ge=2)
    promote: bool = knob(True, "promote the candidate alias to champion when it wins")
    primary_metric: str = knob("nDCG@10", "the measure promotion compares (one of measures)")
    promotion_margin: float = knob(0.01, "the candidate must beat the baseline by this much", ge=0)
    adapter_metrics: list[str] = knob(
        [
            "nDCG_at_10",
            "answerable.nDCG_at_10",
            "context_violation_at_5",
            "abstain_nofit",
            "abstain_answerable",
            "alternatives_precision",
            "alternatives_recall",
            "room_only.precision_at_10",
            "room_only.category_recall_at_10",
            "room_only.nothing_shown_while_fits",
        ],
        "metrics each trained student logs on its own MLflow run, on validation (val.<name>) "
        "and on the held-out rooms (test.<name>), so the compare view lines students up",
    )
    headline: list[str] = knob(
        [
            "nDCG_at_10",
            "answerable.nDCG_at_10",
            "context_violation_at_5",
            "abstain_nofit",
            "abstain_answerable",
            "student_spearman",
            "fit_agreement",
            "ceiling_gap",
        ],
        "metric columns the commands print (ablation.md holds them all)",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "eval")
        if not self.ablations:
            raise ValueError("eval.ablations is empty; list stage lists such as [[bm25]]")
        if min(self.ks, default=0) < 1:
            raise ValueError(f"eval.ks {self.ks} must list one or more cut-offs, each >= 1")
        if not self.min_fit_scores or not all(0 < v < 1 for v in self.min_fit_scores):
            raise ValueError(
                f"eval.min_fit_scores {self.min_fit_scores} must list one or more fit bars, "
                "each in (0, 1)"
            )
        if self.primary_metric not in self.measures:
            raise ValueError(
                f"eval.primary_metric {self.primary_metric!r} must be one of eval.measures "
                f"{self.measures}"
            )
