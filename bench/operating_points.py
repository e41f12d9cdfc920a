"""Where does a trained student's funnel sit for each fit threshold and ordering?

    python -m bench.operating_points --registry learning-seed0 [hydra overrides...]
        [--thresholds 0.5 0.6 ...]

(the thresholds last: they take every number that follows)

Searches the held-out set once with the registry's candidate student (stage 3 keeps stage 2's
k2 candidates with their agent and SigLIP scores), then lists each (ordering,
`funnel.min_fit_score`) pair's headline numbers, judged as the evaluation judges them (the
generated world's ground truth where it has one): context violation@5, abstention on no-fit
and answerable requests, nDCG@10 overall and on answerable requests. The agent runs once per
registry, so a threshold sweep costs one evaluation's searches, not one per threshold. It
shows whether a target is out of a threshold's reach (no threshold meets violation and
abstention at once), which only a better student fixes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

COLUMNS = {
    "violation@5": "context_violation_at_5",
    "abstain no-fit": "abstain_nofit",
    "abstain answerable": "abstain_answerable",
    "nDCG@10": "nDCG_at_10",
    "answerable nDCG@10": "answerable.nDCG_at_10",
}


def scored_requests(overrides: list[str]) -> tuple[object, list]:
    """The held-out requests with the candidate student's scores on stage 2's candidates."""
    from mars_core.app.compose import load_config
    from mars_core.evaluation.ablation import searched
    from mars_core.evaluation.ordering import scoring_funnel
    from mars_core.evaluation.requests import build_eval_set
    from mars_core.infra.registry import CANDIDATE, registry_uri

    cfg = load_config(overrides)
    eval_set = build_eval_set(Path(cfg.data.out_dir), cfg.eval, cfg.index.vocabulary, seed=cfg.seed)
    adapter = registry_uri(cfg.student.registry, CANDIDATE)
    with scoring_funnel(cfg, adapter, eval_set.test_keys) as funnel:
        found = [(r, res.results) for r, res in searched(funnel, eval_set, cfg, "scoring", [])]
    return cfg, found


def operating_point(cfg, found: list, order: str, threshold: float) -> dict[str, float]:
    """The metrics of one (ordering, threshold) over the already scored requests."""
    from mars_core.agent.ordering import Ordering
    from mars_core.evaluation.metrics import all_metrics
    from mars_core.evaluation.ordering import ranked_by_ordering

    ordering = Ordering(order, 0.0, threshold, "bench")
    ranked = [ranked_by_ordering(r, found_, ordering, cfg.funnel.k3) for r, found_ in found]
    return all_metrics(ranked, cfg.eval.measures, cfg.eval.ks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", required=True, help="registered model (its candidate)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.55, 0.6, 0.65, 0.7])
    parser.add_argument("overrides", nargs="*", help="hydra overrides (e.g. train.seed=1)")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.agent.ordering import BY_AGENT, FITS_BY_SIGLIP

    cfg, found = scored_requests([*args.overrides, f"student.registry={args.registry}"])
    print(f"\n{args.registry}: {len(found)} held-out requests\n")
    print("| order | min_fit_score | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for order in (FITS_BY_SIGLIP, BY_AGENT):
        for threshold in args.thresholds:
            metrics = operating_point(cfg, found, order, threshold)
            cells = " | ".join(f"{metrics[key]:.3f}" for key in COLUMNS.values())
            print(f"| {order} | {threshold:.2f} | {cells} |")


if __name__ == "__main__":
    main()
