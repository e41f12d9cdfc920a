"""Index build flow: the catalogue becomes stage 1's Lucene index and stage 2's LanceDB table.

Re-running it on a changed catalogue embeds only new or changed products and swaps the new
build in atomically (see mars_core.index.reindex); searches keep answering meanwhile.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import mlflow
from prefect import flow

from flows.apps import APPS
from mars_core.catalogue.schema import CATALOGUE_FILE
from mars_core.cli import Invocation, run_app
from mars_core.compose import load_config
from mars_core.config import MarsConfig
from mars_core.errors import UserInputError
from mars_core.index.reindex import ReindexReport
from mars_core.tracking import mlflow_run
from tasks.index import cache_visual_tokens, reindex_catalogue


@flow(name="index")
def build_index(overrides: list[str] | None = None) -> ReindexReport:
    """Build or update the indexes of `data.out_dir`'s catalogue in `index.dir`."""
    cfg = load_config(overrides)
    catalogue = Path(cfg.data.out_dir) / CATALOGUE_FILE
    with mlflow_run(cfg.mlflow.experiment, "index", cfg, overrides):
        report = reindex_catalogue(
            str(catalogue), cfg.index, cfg.embedder, cfg.paths.models, cfg.data.max_image_pixels
        )
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(asdict(report), "index_report.json")
        if "agent" in cfg.funnel.stages and cfg.student.visual_cache:
            tokens = cache_visual_tokens(
                str(catalogue),
                cfg.student,
                cfg.index.dir,
                cfg.paths.models,
                cfg.data.max_image_pixels,
            )
            mlflow.log_metrics(
                {
                    "visual_tokens_computed": tokens.computed,
                    "visual_tokens_bytes_per_product": tokens.bytes_per_product,
                }
            )
            mlflow.log_dict(asdict(tokens), "visual_tokens_report.json")
    return report


def check_inputs(cfg: MarsConfig) -> None:
    """The catalogue must be there before the flow starts (one line naming the command)."""
    catalogue = Path(cfg.data.out_dir) / CATALOGUE_FILE
    if not catalogue.is_file():
        raise UserInputError(f"no catalogue at {catalogue}: run `python -m flows.ingest` first")


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.index [hydra overrides...]`"""
    run_app(APPS["index"], argv, _run)


def _run(call: Invocation) -> None:
    check_inputs(load_config(call.overrides))
    report = build_index(call.overrides)
    counts = ", ".join(f"{k} {n}" for k, n in report.changes().items())
    print(f"\nindex {'published' if report.published else 'unchanged'}: {counts}")
    print(f"  embedded {report.embedded} images, refreshed {report.refreshed} rows")
    print(f"  {report.rows} products in {len(report.categories)} categories")
    if report.skipped:
        print(f"  skipped {len(report.skipped)} products whose image could not be loaded:")
        for entry in report.skipped:
            print(f"    {entry['key']}: {entry['reason']}")
    print(f"  lucene {report.lucene} ({report.lucene_bytes} bytes)")
    if report.unlockable_categories:
        print(f"  no vocabulary word locks: {', '.join(report.unlockable_categories)}")
    print(f"  lance version {report.lance_version} ({report.lance_bytes} bytes)")


if __name__ == "__main__":
    main()
