"""The README's main job runs as a real Prefect flow and logs to a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest


@pytest.mark.slow
def test_demo_flow_prepares_models_and_logs_a_run(session_overrides, prefect_harness):
    from flows.demo import demo

    models = demo([*session_overrides, "teacher=tiny_vlm"])
    assert set(models) == {"student", "embedder", "teacher"}
    assert Path(models["student"], "config.json").is_file()
    assert Path(models["embedder"].removeprefix("local-dir:"), "open_clip_config.json").is_file()
    runs = mlflow.search_runs(experiment_names=["mars"], filter_string="run_name = 'demo'")
    assert len(runs) >= 1
    assert runs.iloc[0]["params.student.name"] == "tiny"
