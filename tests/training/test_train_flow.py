"""The train flow: inputs checked first; SIGKILL mid-training then a re-run resumes from the
checkpoint; the registered `candidate` (a whole fine-tuned tiny model) loads into the agent
and changes its scores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.train import main, train
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import ProductView
from mars_core.config import StudentConfig
from mars_core.vision.images import load_image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Checkpoint every 4 steps; the first run is killed after its first checkpoint.
KNOBS = [
    "train.max_steps=12",
    "train.eval_steps=4",
    "train.batch_size=4",
    "train.logging_steps=1",
    "train.patience=10",
]


def test_missing_labels_is_one_error_line_naming_the_label_flow(
    session_overrides, tmp_path, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        main([*session_overrides, f"data.out_dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "python -m flows.label" in err and "\n" not in err


def test_sigkill_then_rerun_resumes_and_the_candidate_changes_the_agent(
    labelled, prefect_harness, cfg, model_cache
):
    overrides = [*labelled.overrides, *KNOBS]
    checkpoints = Path(cfg.paths.artifacts) / "students" / "checkpoints"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.train", *overrides],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(checkpoints.glob("*/checkpoint-4/trainer_state.json")):
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    summary = train(overrides=overrides)
    trained = summary.training
    assert trained.resumed_from is not None
    assert Path(trained.resumed_from).name.startswith("checkpoint-")
    assert int(Path(trained.resumed_from).name.split("-")[1]) >= 4
    assert trained.steps == 12
    assert trained.train_loss[0][0] > 4  # the loss curve starts after the checkpoint
    folder = Path(trained.folder)
    assert (folder / "config.json").is_file() and (folder / "README.md").is_file()
    assert folder.parent.name == "students" and folder.name == summary.run_id

    import mlflow

    run = mlflow.get_run(summary.run_id)
    assert "val_loss" in run.data.metrics and "dataset.hash" in run.data.params
    # Steps end it, not the clock: the budget (two hours by default) is a safety net.
    assert trained.stopped_by == run.data.tags["stopped_by"] == "steps"
    version = mlflow.MlflowClient().get_model_version(cfg.student.registry, summary.version)
    assert version.tags["stopped_by"] == "steps" and version.tags["steps"] == "12"
    assert version.tags["seed"] == "0" and version.tags["teacher"] == cfg.teacher.name
    assert "12 of 12 steps, stopped by steps" in version.description
    assert f"teacher {cfg.teacher.name}" in version.description
    history = mlflow.MlflowClient().get_metric_history(summary.run_id, "train_loss")
    assert len(history) >= 2
    assert sft_progress() == 100.0  # the Prefect UI followed the steps

    untrained = _scores(cfg.student, model_cache, cfg)
    candidate = StudentConfig(**{**vars(cfg.student), "adapter": summary.model_uri})
    after = _scores(candidate, model_cache, cfg)
    assert max(abs(a - b) for a, b in zip(untrained, after, strict=True)) > 1e-3


def _scores(student: StudentConfig, model_cache: Path, cfg) -> list[float]:
    import pyarrow.parquet as pq

    rooms = pq.read_table(Path(cfg.data.out_dir) / "rooms.parquet").to_pylist()
    products = pq.read_table(Path(cfg.data.out_dir) / "catalogue.parquet").to_pylist()[:3]
    scorer = AgentScorer.from_config(student, model_cache)
    room = load_image(rooms[0]["path"], cfg.data.max_image_pixels)
    views = [
        ProductView(load_image(p["image_path"], cfg.data.max_image_pixels), p["name"])
        for p in products
    ]
    return scorer.score(room, "bed", views)


def sft_progress() -> float:
    """The newest `sft-steps` progress artifact's value."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        [newest] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sft-steps"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return newest.data
