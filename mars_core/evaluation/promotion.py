"""Promotion: the `candidate` adapter becomes `champion` only when it wins by a margin.

The candidate's full-funnel configuration is compared on `eval.primary_metric` with the
current champion's, or, when there is no champion yet, with the best configuration without
the agent (the funnel MARS would be without a student). Both numbers and the decision are
returned, to be logged, whatever the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from mars_core.evaluation.ablation import ConfigurationResult
from mars_core.evaluation.metrics import metric_key
from mars_core.infra.registry import CANDIDATE, CHAMPION, registry_uri


@dataclass(frozen=True)
class PromotionDecision:
    """What was compared, on which metric, and whether the candidate was promoted."""

    promoted: bool
    metric: str
    candidate: str | None  # configuration name
    candidate_value: float | None
    baseline: str | None
    baseline_value: float | None
    margin: float
    version: int | None  # the candidate's model version
    reason: str


def decide(
    results: list[ConfigurationResult],
    *,
    model: str,
    primary_metric: str,
    margin: float,
    candidate_version: int | None,
    champion_version: int | None,
) -> PromotionDecision:
    """Compare the candidate with the champion (or the best no-agent configuration)."""
    key = metric_key(primary_metric)
    by_adapter = {r.configuration.adapter: r for r in results if r.configuration.has_agent}
    candidate = by_adapter.get(registry_uri(model, CANDIDATE))
    if candidate is None or candidate_version is None:
        return PromotionDecision(
            False, key, None, None, None, None, margin, None, "no candidate in the registry"
        )
    champion = by_adapter.get(registry_uri(model, CHAMPION))
    if champion is not None and champion_version is not None:
        baseline = champion
    else:
        baseline = max(
            (r for r in results if not r.configuration.has_agent and not r.configuration.reference),
            key=lambda r: r.metrics[key],
        )
    value, base = candidate.metrics[key], baseline.metrics[key]
    if candidate_version == champion_version:
        promoted, reason = False, "the candidate already is the champion"
    else:
        promoted = value >= base + margin
        verdict = "beats" if promoted else "does not beat"
        reason = f"{key} {value:.4f} {verdict} {base:.4f} + margin {margin}"
    return PromotionDecision(
        promoted,
        key,
        candidate.configuration.name,
        value,
        baseline.configuration.name,
        base,
        margin,
        candidate_version,
        reason,
    )


def promote(model: str, decision: PromotionDecision) -> None:
    """Point `champion` at the candidate's version when the decision says so."""
    from mlflow import MlflowClient

    if decision.promoted and decision.version is not None:
        MlflowClient().set_registered_model_alias(model, CHAMPION, decision.version)
