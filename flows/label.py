"""Teacher labelling flow: every mined pair gets a score and a one-sentence reason.

`python -m flows.label [hydra overrides...]` labels `data.out_dir/pairs.parquet` into
`labels.parquet` beside it; `label(overrides, pairs=".../heldout_pairs.parquet")` (or
`python -m flows.label --pairs FILE ...`) labels another pairs file. The work is mapped over
pair shards, so a Dask task runner or several server replicas label in parallel, and a re-run
after a crash labels only what is missing (see `mars_core.teacher.labelling`).
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["label"])  # the program: answers --help before the imports below

from dataclasses import asdict
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
from prefect import flow, unmapped

from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.config import MarsConfig
from mars_core.infra.tracking import mlflow_run
from mars_core.mining.schema import PAIRS_FILE
from mars_core.teacher.card import dataset_card
from mars_core.teacher.labelling import read_pairs
from tasks.flow_process import prepare_flow_process
from tasks.label import consolidate_labels, label_pair_shard, plan_label_shards
from tasks.shards import map_shards


@flow(name="label")
def label(overrides: list[str], pairs: str | None = None) -> dict:
    """Label the pairs file (default `data.out_dir/pairs.parquet`); log the dataset card."""
    cfg = load_config(overrides)
    pairs_path = check_inputs(cfg, pairs)
    teacher = cfg.teacher
    with mlflow_run(cfg.mlflow.experiment, "label", cfg, overrides):
        shards = plan_label_shards(str(pairs_path), teacher)
        reports = map_shards(
            cfg.pipeline,
            label_pair_shard,
            {
                "pairs": unmapped(str(pairs_path)),
                "shard": shards,
                "catalogue_dir": unmapped(cfg.data.out_dir),
                "teacher": unmapped(teacher),
                "models_dir": unmapped(cfg.paths.models),
                "max_image_pixels": unmapped(cfg.data.max_image_pixels),
            },
        )
        out = consolidate_labels(str(pairs_path), teacher)
        card = dataset_card(pq.read_table(out.path), teacher, cfg.seed)
        mlflow.log_metrics(
            card.metrics()
            | {"labelled_now": sum(r.labelled for r in reports), "missing": out.missing}
        )
        mlflow.log_figure(card.figure(), "label_scores.png")
        mlflow.log_text(card.markdown(), "label_card.md")
        mlflow.log_dict(asdict(out), "label_report.json")
    return asdict(out) | {
        "labelled_now": sum(r.labelled for r in reports),
        "already": sum(r.already for r in reports),
        "lookalike_misfit_share": card.lookalike_misfit_share,
        "unlisted": card.unlisted_line() if card.unlisted else None,
    }


def check_inputs(cfg: MarsConfig, pairs: str | None) -> Path:
    """The pairs file, after checking it and the catalogue exist (one error line if not)."""
    pairs_path = Path(pairs) if pairs else Path(cfg.data.out_dir) / PAIRS_FILE
    read_pairs(pairs_path)
    require_inputs(cfg, "label")
    return pairs_path


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.label [--pairs FILE] [hydra overrides...]`"""
    run_app(APPS["label"], argv, _run)


def _run(call: Invocation) -> None:
    """Check config and inputs first, so a mistake is one line, not a failed flow run."""
    pairs = call.options["pairs"]
    cfg = call.cfg
    check_inputs(cfg, pairs)
    prepare_flow_process(cfg, debug=call.debug)
    out = label(call.overrides, pairs)
    counts = ", ".join(f"{status} {n}" for status, n in out["counts"].items())
    print(f"\n{out['rows']} labels ({counts}); {out['labelled_now']} labelled now")
    if out["missing"]:
        print(f"  {out['missing']} pairs have no label yet: run the same command again")
    share = out["lookalike_misfit_share"]
    if share is not None:
        print(f"  look-alikes labelled misfits: {share:.1%}")
    if out["unlisted"]:
        print(f"  warning: {out['unlisted']}")
    print(f"labels: {out['path']}")


if __name__ == "__main__":
    main()
