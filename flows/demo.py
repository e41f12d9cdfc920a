"""The README's main job on the offline profile.

For now it prepares the tiny models (built once into the cache) and prints where they are;
ingest, index build and a sample search join it as they land.
"""

from __future__ import annotations

import sys

from prefect import flow

from flows.config import load_config
from mars_core.tracking import mlflow_run
from tasks.models import prepare_embedder, prepare_vlm


@flow(name="demo")
def demo(overrides: list[str] | None = None) -> dict[str, str]:
    """Prepare every model of the configured profile; return role -> folder or id."""
    cfg = load_config(overrides)
    with mlflow_run(cfg.mlflow.experiment, "demo", cfg):
        models = {
            "student": prepare_vlm(cfg.student, cfg.paths.models),
            "embedder": prepare_embedder(cfg.embedder, cfg.paths.models),
        }
        if cfg.teacher.kind != "metadata":
            models["teacher"] = prepare_vlm(cfg.teacher, cfg.paths.models)
    return models


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.demo [hydra overrides...]`"""
    models = demo(list(sys.argv[1:] if argv is None else argv))
    print("\nMARS models ready:")
    for role, where in models.items():
        print(f"  {role:9s} {where}")


if __name__ == "__main__":
    main()
