"""Evaluation tasks: the whole evaluation (every configuration, promotion's numbers), and one
trained student's validation and held-out metrics for its own run."""

from __future__ import annotations

from prefect import task

from mars_core.config import MarsConfig
from mars_core.evaluation.assess import HeldOut, held_out_metrics, validate_version
from mars_core.evaluation.ordering import ValidationChoice
from mars_core.evaluation.run import EvaluationReport, evaluate


@task(name="evaluate-configurations")
def evaluate_configurations(cfg: MarsConfig) -> EvaluationReport:
    """Every configuration over the held-out set, the table and plots, the promotion call."""
    return evaluate(cfg)


@task(name="validate-student")
def validate_student_task(cfg: MarsConfig, model: str, version: int) -> ValidationChoice:
    """The version's operating point chosen on validation rooms (recorded as its tags) and
    its metrics there, judged by the teacher."""
    return validate_version(cfg, model, version)


@task(name="held-out-metrics")
def held_out_task(cfg: MarsConfig, adapter: str) -> HeldOut:
    """The student's funnel on the held-out rooms, as it serves."""
    return held_out_metrics(cfg, adapter)
