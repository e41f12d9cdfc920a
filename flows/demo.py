"""The README's main job: the whole offline pipeline, ending in a page a person can open.

ingest (generated world) → index build (Lucene + LanceDB) → sample searches through the
3-stage funnel → `artifacts/reports/demo.html`. Each step is its own flow, run here as a
subflow with the same overrides, so every step also runs alone.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.apps import APPS
from flows.index import build_index
from flows.inference import inference
from flows.ingest import ingest, quarantine_note
from mars_core.cli import Invocation, run_app
from mars_core.compose import load_config
from mars_core.pipeline import check_pipeline_inputs
from mars_core.search_service import run_folder
from mars_core.tracking import mlflow_run
from tasks.search import write_demo_requests

DEMO_NAME = "demo"


@flow(name="demo")
def demo(overrides: list[str] | None = None) -> dict:
    """Run ingest, index build and the configured sample searches; return the output paths."""
    overrides = list(overrides or [])
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "demo", cfg, overrides):
        catalogue = ingest(overrides)
        index = build_index(overrides)
        folder = run_folder(Path(cfg.paths.reports), "demo")
        requests = write_demo_requests(cfg, str(folder / f"{DEMO_NAME}.jsonl"))
        search = inference(requests, overrides, out_dir=str(folder))
    return {
        "note": quarantine_note(cfg, catalogue),
        "catalogue": catalogue.out_dir,
        "products": catalogue.products,
        "index": cfg.index.dir,
        "indexed": index.rows,
        "results": search.results,
        "report": search.page,
        "searched": search.searched,
        "failed": search.failed,
        "summary": search.summary(),
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.demo [hydra overrides...]`"""
    run_app(APPS["demo"], argv, _run)


def _run(call: Invocation) -> None:
    check_pipeline_inputs(load_config(call.overrides))
    out = demo(call.overrides)
    print("\nMARS demo done:")
    print(f"  catalogue  {out['catalogue']} ({out['products']} products)")
    if out["note"]:
        print(f"  note: {out['note']}")
    print(f"  index      {out['index']} ({out['indexed']} products)")
    print(f"\n{out['summary']}")
    print(f"\nOpen the search results in a browser:\n  {out['report']}")


if __name__ == "__main__":
    main()
