"""Mining flow: the room/product pairs worth a teacher's label, chosen by SigLIP similarity.

`python -m flows.mining [hydra overrides...]` reads the catalogue, rooms and splits of
`data.out_dir` and the current index build of `index.dir`, mines room shards as mapped tasks
(a Dask task runner can spread them) and writes `pairs.parquet` (train rooms x train products)
and `heldout_pairs.parquet` (test x test) beside the catalogue. MLflow gets the stratum mix,
pairs per category and a similarity histogram per stratum.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["mining"])  # the program: answers --help before the imports below

from dataclasses import asdict
from pathlib import Path

import mlflow
from prefect import flow, unmapped

from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.config import MarsConfig
from mars_core.index.store import IndexSnapshot
from mars_core.infra.tracking import mlflow_run
from mars_core.mining.mine import MiningReport
from mars_core.mining.plots import similarity_figure
from tasks.flow_process import prepare_flow_process
from tasks.mining import combine_pairs, mine_room_shard, plan_mining
from tasks.shards import map_shards


def inputs(cfg: MarsConfig) -> IndexSnapshot:
    """The index build to mine from, once the catalogue, rooms and splits are there."""
    require_inputs(cfg, "mining")
    return IndexSnapshot.current(cfg.index.dir)


@flow(name="mining")
def mining(overrides: list[str] | None = None) -> MiningReport:
    """Mine every room shard against the current index; write and log the pairs."""
    cfg = load_config(overrides)
    snapshot = inputs(cfg)
    out_dir = cfg.data.out_dir
    with mlflow_run(cfg.mlflow.experiment, "mining", cfg, overrides):
        plan = plan_mining(out_dir, cfg.mining)
        shards = map_shards(
            cfg.pipeline,
            mine_room_shard,
            {
                "shard": plan.shards,
                "out_dir": unmapped(out_dir),
                "snapshot": unmapped(snapshot),
                "index": unmapped(cfg.index),
                "embedder": unmapped(cfg.embedder),
                "models_dir": unmapped(cfg.paths.models),
                "max_image_pixels": unmapped(cfg.data.max_image_pixels),
                "cfg": unmapped(cfg.mining),
            },
        )
        report = combine_pairs(shards, plan, out_dir, cfg.mining, cfg.index)
        log_report(report, cfg)
    return report


def log_report(report: MiningReport, cfg: MarsConfig) -> None:
    """Counts as metrics, the report as JSON, a similarity histogram per written file."""
    mlflow.log_metrics(report.metrics())
    mlflow.log_dict(asdict(report), "mining_report.json")
    files = [report.pairs_file, report.heldout_file]
    for path in filter(None, files):
        figure = similarity_figure(path, cfg.mining.histogram_bins)
        mlflow.log_figure(figure, f"mining/{Path(path).stem}_similarity.png")


def _run(call: Invocation) -> None:
    """Check the config and the inputs first, so a missing one is one line, not a failed run."""
    cfg = call.cfg
    inputs(cfg)
    prepare_flow_process(cfg, debug=call.debug)
    print(mining(call.overrides).summary())


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.mining [hydra overrides...]`"""
    run_app(APPS["mining"], argv, _run)


if __name__ == "__main__":
    main()
