"""What one trained student measures, for its own MLflow run: on validation (SFT's held-out
rooms x held-out products, judged by the teacher) and on the held-out test rooms (judged by
the ground truth where the data has one).

One trained student is one run: its params, its curves and these metrics, under the names
`val.<metric>` and `test.<metric>` (`eval.adapter_metrics`), so MLflow's compare view and
parallel-coordinates chart put students side by side. On validation the student's operating
point is chosen first (`evaluation/ordering.py`) and its metrics are those of the chosen
point; the held-out set is then searched as the student will serve, with that point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import Configuration, run_configuration
from mars_core.evaluation.ordering import (
    STUDENT_FUNNEL,
    ValidationChoice,
    choose_ordering,
    record_ordering,
)
from mars_core.evaluation.requests import build_eval_set
from mars_core.infra.registry import version_uri

VALIDATION = "val"
HELD_OUT = "test"


@dataclass(frozen=True)
class HeldOut:
    """A student's metrics on the held-out set and who judged them."""

    metrics: dict[str, float]
    judged_by: str  # ground_truth or teacher
    requests: int


def validate_version(cfg: MarsConfig, model: str, version: int) -> ValidationChoice:
    """Choose the version's operating point on validation and record it as its tags (what
    the funnel serves it with); the choice carries the student's validation metrics."""
    choice = choose_ordering(cfg, version_uri(model, version))
    record_ordering(model, version, choice.ordering)
    return choice


def held_out_metrics(cfg: MarsConfig, adapter: str) -> HeldOut:
    """The student's full funnel on the held-out requests, as it serves (its chosen point,
    what it offers beyond the query); no pairs are scored against the teacher (that
    agreement is the evaluation flow's, beside the ablations)."""
    data_dir = Path(cfg.data.out_dir)
    eval_set = build_eval_set(data_dir, cfg.eval, cfg.index.vocabulary, seed=cfg.seed)
    result = run_configuration(cfg, eval_set, Configuration(list(STUDENT_FUNNEL), adapter), [])
    return HeldOut(result.metrics, eval_set.source, len(eval_set.requests))


def run_metrics(prefix: str, metrics: dict[str, float], names: list[str]) -> dict[str, float]:
    """`names` of `metrics` (those measured) under `<prefix>.<name>`, as the run logs them."""
    return {f"{prefix}.{name}": metrics[name] for name in names if name in metrics}
