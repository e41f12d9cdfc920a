"""Evaluation flow: stage ablations and adapters on held-out rooms, then promotion.

    python -m flows.evaluate [hydra overrides...]
    python -m flows.evaluate 'eval.adapters=[models:/mars-student@candidate]'

One MLflow run "evaluate" with the markdown table and plots as artifacts and the promotion
decision with its numbers. A student from the registry gets its held-out metrics (`test.*`,
`eval.adapter_metrics`) on the run that trained it, beside its params, curves and validation
metrics, so the MLflow UI compares students run by run; every other configuration (the
stages without the agent, the reference rows, a student from a folder) is a nested run.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["evaluate"])  # the program: answers --help before the imports below

from dataclasses import asdict

import mlflow
from prefect import flow

from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.evaluation.assess import HELD_OUT, run_metrics
from mars_core.evaluation.promotion import promote
from mars_core.evaluation.run import EvaluationReport
from mars_core.evaluation.versions import trained_by
from mars_core.infra.tracking import log_to_run, mlflow_run
from tasks.evaluate import evaluate_configurations
from tasks.flow_process import prepare_flow_process


@flow(name="evaluate")
def evaluate(overrides: list[str] | None = None) -> EvaluationReport:
    """Measure every configuration of `eval.ablations` x `eval.adapters`; promote on a win."""
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "evaluate", cfg, overrides):
        report = evaluate_configurations(cfg)
        judged_by = {"judged_by": report.source}
        mlflow.set_tags(judged_by)
        for result in report.results:
            student_run = trained_by(result)
            if student_run is not None:
                held_out = run_metrics(HELD_OUT, result.metrics, cfg.eval.adapter_metrics)
                log_to_run(student_run, held_out, {f"{HELD_OUT}.judged_by": report.source})
                continue
            with mlflow_run(cfg.mlflow.experiment, result.configuration.name):
                mlflow.set_tags(judged_by)
                mlflow.log_params(
                    {
                        "stages": ",".join(result.configuration.stages),
                        "adapter": result.configuration.adapter or "base",
                        "judgments": report.source,
                        "reference": report.reference,
                    }
                )
                mlflow.log_metrics(result.metrics)
        mlflow.log_params({"judgments": report.source, "reference": report.reference})
        mlflow.log_metric("requests", report.requests)
        for path in report.files.values():
            mlflow.log_artifact(path)
        if report.decision is not None:
            promote(cfg.student.registry, report.decision)
            mlflow.log_dict(asdict(report.decision), "promotion.json")
            mlflow.log_metric("promoted", float(report.decision.promoted))
    return report


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.evaluate [hydra overrides...]`"""
    run_app(APPS["evaluate"], argv, _run)


def _run(call: Invocation) -> None:
    """Check the config and the inputs first, so a mistake is one line, not a failed flow run."""
    cfg = call.cfg
    require_inputs(cfg, "evaluate")
    prepare_flow_process(cfg, debug=call.debug)
    print(evaluate(call.overrides).summary(cfg.eval.headline))


if __name__ == "__main__":
    main()
