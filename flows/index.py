"""Index build flow: the catalogue becomes stage 1's Lucene index and stage 2's LanceDB table.

Re-running it on a changed catalogue embeds only new or changed products and swaps the new
build in atomically (see mars_core.index.reindex); searches keep answering meanwhile. Each run
first verifies the published index and repairs what is broken (mars_core.index.verify,
mars_core.index.repair);
`--verify` only checks, and `--allow-removals` lets a re-index remove more than
index.max_removal_share of the products.
"""

from __future__ import annotations

from mars_core.app.apps import APPS
from mars_core.app.cli import Invocation, answer_early, run_app

answer_early(__name__, APPS["index"])  # the program: answers --help before the imports below

from dataclasses import asdict
from pathlib import Path

import mlflow
from prefect import flow

from mars_core.app.compose import load_config
from mars_core.app.steps import require_inputs
from mars_core.catalogue.schema import CATALOGUE_FILE
from mars_core.config import MarsConfig
from mars_core.funnel.stages import AGENT
from mars_core.index.plan import preview_removals
from mars_core.index.reindex import ReindexReport
from mars_core.index.verify import VerifyReport
from mars_core.infra.tracking import mlflow_run
from tasks.flow_process import prepare_flow_process
from tasks.index import cache_visual_tokens, reindex_catalogue, verify_published

ALLOW_REMOVALS = "index.allow_removals=true"


@flow(name="reindex")
def build_index(overrides: list[str] | None = None) -> ReindexReport:
    """Build or update the indexes of `data.out_dir`'s catalogue in `index.dir`."""
    cfg = load_config(overrides)
    catalogue = Path(cfg.data.out_dir) / CATALOGUE_FILE
    with mlflow_run(cfg.mlflow.experiment, "index", cfg, overrides):
        report = reindex_catalogue(
            str(catalogue),
            cfg.index,
            cfg.embedder,
            cfg.paths.models,
            cfg.data.max_image_pixels,
            cfg.pipeline,
        )
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(asdict(report), "index_report.json")
        if AGENT in cfg.funnel.stages and cfg.student.visual_cache:
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


@flow(name="index-verify")
def verify_index(overrides: list[str] | None = None) -> VerifyReport:
    """Check the published index in `index.dir` against its manifest; changes nothing."""
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "index-verify", cfg, overrides):
        report = verify_published(
            cfg.index, cfg.embedder, cfg.paths.models, cfg.data.max_image_pixels
        )
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(asdict(report), "verify_report.json")
    return report


def check_inputs(cfg: MarsConfig) -> None:
    """The catalogue must be there, and not remove too much of the live index, before the
    flow starts (one line naming the command or the flag)."""
    require_inputs(cfg, "index")
    preview_removals(Path(cfg.data.out_dir) / CATALOGUE_FILE, cfg.index)


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.index [hydra overrides...]`"""
    run_app(APPS["index"], argv, _run)


def _run(call: Invocation) -> None:
    overrides = [*call.overrides, *([ALLOW_REMOVALS] if call.options["allow_removals"] else [])]
    cfg = load_config(overrides)
    if call.options["verify"]:
        prepare_flow_process(cfg, debug=call.debug)
        _verify(overrides)
        return
    check_inputs(cfg)
    prepare_flow_process(cfg, debug=call.debug)
    print(build_index(overrides).summary())


def _verify(overrides: list[str]) -> None:
    """Print each broken part; a damaged index ends in one `error:` line, exit 2."""
    report = verify_index(overrides)
    print(report.summary())
    if not report.ok:
        raise report.error()


if __name__ == "__main__":
    main()
