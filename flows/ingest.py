"""Ingest flow: raw data -> catalogue, rooms, ground truth, quarantine and splits tables.

`python -m flows.ingest data=synthetic` generates the offline world (once per settings) and
ingests it; `data=abo` reads the ABO layout in data.raw_dir (`data.acquire=download` fetches
and extracts the archives first). Counts, quarantine per reason and catalogue changes go to
MLflow; a re-run over unchanged input rewrites nothing.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["ingest"])  # the program: answers --help before the imports below

from dataclasses import asdict

import mlflow
from prefect import flow

from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.catalogue.ingest import IngestReport
from mars_core.config import MarsConfig
from mars_core.infra.tracking import mlflow_run
from tasks.flow_process import prepare_flow_process
from tasks.ingest import (
    acquire_abo_task,
    build_catalogue_task,
    generate_world_task,
    make_splits_task,
)


@flow(name="ingest")
def ingest(overrides: list[str] | None = None) -> IngestReport:
    """Get the raw data, build the tables, split them; log counts to MLflow."""
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "ingest", cfg, overrides):
        if cfg.data.source == "synthetic":
            world = generate_world_task(cfg.data)
            mlflow.log_metrics({"world.generated": float(world.generated)})
        else:
            acquire_abo_task(cfg.data)
        report = build_catalogue_task(cfg.data)
        splits = make_splits_task(cfg.data)
        mlflow.log_metrics(report.metrics() | splits.metrics())
        mlflow.log_dict(asdict(report) | {"splits": splits.counts}, "ingest_report.json")
    return report


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.ingest [hydra overrides...]`"""
    run_app(APPS["ingest"], argv, _run)


def _run(call: Invocation) -> None:
    """Check the raw inputs first, so a missing folder is one line, not a failed flow run."""
    cfg = call.cfg
    require_inputs(cfg, "ingest")
    prepare_flow_process(cfg, debug=call.debug)
    report = ingest(call.overrides)
    print(f"\nMARS catalogue in {report.out_dir}:")
    print(f"  {report.products} products, {report.rooms} rooms, {report.ground_truth} judgements")
    print(f"  changes since last run: {report.changes}")
    quarantined = ", ".join(f"{r} {n}" for r, n in report.quarantined.items()) or "none"
    print(f"  quarantined: {quarantined}")
    if note := quarantine_note(cfg, report):
        print(f"  note: {note}")


def quarantine_note(cfg: MarsConfig, report: IngestReport) -> str | None:
    """Why the generated world's quarantine is no cause for alarm (it is there on purpose)."""
    if cfg.data.source != "synthetic" or not cfg.data.world.broken_records:
        return None
    if not report.quarantined:
        return None
    return (
        "the generated world breaks one record per quarantine reason on purpose, to show that "
        "path (data.world.broken_records=false turns it off); nothing is wrong"
    )


if __name__ == "__main__":
    main()
