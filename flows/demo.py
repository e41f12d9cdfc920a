"""The README's main job: the whole offline pipeline, ending in a page a person can open.

ingest (generated world) → index build (Lucene + LanceDB) → sample searches through the
3-stage funnel → `artifacts/reports/demo.html`. Each step is its own flow, run here as a
subflow with the same overrides, so every step also runs alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow

from flows.index import build_index
from flows.inference import inference
from flows.ingest import ingest
from mars_core.compose import load_config
from mars_core.tracking import mlflow_run
from tasks.search import write_demo_requests


@flow(name="demo")
def demo(overrides: list[str] | None = None) -> dict:
    """Run ingest, index build and the configured sample searches; return the output paths."""
    overrides = list(overrides or [])
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "demo", cfg):
        catalogue = ingest(overrides)
        index = build_index(overrides)
        requests = write_demo_requests(cfg, str(Path(cfg.paths.reports) / "demo_requests.jsonl"))
        search = inference(requests, overrides, name="demo")
    return {
        "catalogue": catalogue.out_dir,
        "products": catalogue.products,
        "index": cfg.index.dir,
        "indexed": index.rows,
        "results": search.results,
        "report": search.page,
        "searched": search.searched,
        "failed": search.failed,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.demo [hydra overrides...]`"""
    out = demo(list(sys.argv[1:] if argv is None else argv))
    print("\nMARS demo done:")
    print(f"  catalogue  {out['catalogue']} ({out['products']} products)")
    print(f"  index      {out['index']} ({out['indexed']} products)")
    print(f"  results    {out['results']} ({out['searched']} searches, {out['failed']} failed)")
    print(f"\nOpen the search results in a browser:\n  {out['report']}")


if __name__ == "__main__":
    main()
