"""Evaluation task: one call to `mars_core.evaluation.run.evaluate`."""

from __future__ import annotations

from prefect import task

from mars_core.config import MarsConfig
from mars_core.evaluation.run import EvaluationReport, evaluate


@task(name="evaluate-configurations")
def evaluate_configurations(cfg: MarsConfig) -> EvaluationReport:
    """Every configuration over the held-out set, the table and plots, the promotion call."""
    return evaluate(cfg)
