"""The label flow: kill-and-resume, the dataset card in MLflow, and input checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from pairs_factory import small_pairs
from support.chat_server import ChatServer

from flows.label import label, main
from mars_core.app.compose import load_config
from mars_core.mining.schema import HELDOUT_PAIRS_FILE
from mars_core.teacher.labelling import (
    SHARD_GLOB,
    consolidate,
    label_shard,
    labels_path,
    plan_shards,
    shard_dir,
)
from mars_core.teacher.schema import LABELS_SCHEMA

REPO = Path(__file__).resolve().parents[2]
KILL_PAIRS = 40
KILL_AFTER_SHARDS = 3


def server_overrides(url: str) -> list[str]:
    return [
        "teacher=vllm",
        f"teacher.server.endpoint={url}",
        "teacher.pretrained=test-model",
        "teacher.batch_size=2",
        "teacher.shard_pairs=16",
        "teacher.server.concurrency=1",
        "teacher.server.timeout=5",
    ]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_labels(
    world, pairs_table, tmp_path, session_overrides, model_cache, prefect_harness
):
    killed = small_pairs(pairs_table, tmp_path / "killed", KILL_PAIRS)
    calm = small_pairs(pairs_table, tmp_path / "calm", KILL_PAIRS)
    with ChatServer("ok", delay_s=0.05) as server:
        overrides = [*session_overrides, *server_overrides(server.url)]
        teacher = load_config(overrides).teacher
        command = [sys.executable, "-m", "flows.label", "--pairs", str(killed), *overrides]
        child = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        folder = shard_dir(killed, teacher)
        deadline = time.monotonic() + 120
        while len(list(folder.glob(SHARD_GLOB))) < KILL_AFTER_SHARDS:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the labelling subprocess made no shards"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()

        shards = sorted(folder.glob(SHARD_GLOB))
        kept = [pq.read_table(path, schema=LABELS_SCHEMA) for path in shards]  # none torn
        kept_ids = [i for table in kept for i in table.column("pair_id").to_pylist()]
        assert KILL_AFTER_SHARDS * 2 <= len(kept_ids) == len(set(kept_ids)) < KILL_PAIRS
        assert not labels_path(killed).exists()

        resumed = label(overrides, pairs=str(killed))
        for shard in plan_shards(calm, teacher):
            label_shard(
                calm, shard, world.out_dir, teacher, model_cache, world.data.max_image_pixels
            )
        uninterrupted = pq.read_table(consolidate(calm, teacher).path)

    assert resumed["already"] == len(kept_ids)
    assert resumed["labelled_now"] == KILL_PAIRS - len(kept_ids)
    assert resumed["missing"] == resumed["duplicates"] == 0
    labels = pq.read_table(resumed["path"])
    assert labels.schema == LABELS_SCHEMA
    assert labels.num_rows == len(set(labels.column("pair_id").to_pylist())) == KILL_PAIRS
    assert labels.to_pylist() == uninterrupted.to_pylist()


@pytest.mark.slow
def test_flow_labels_heldout_pairs_and_logs_a_dataset_card(
    world, pairs_table, tmp_path, session_overrides, prefect_harness
):
    pairs = small_pairs(pairs_table, tmp_path, 60, name=HELDOUT_PAIRS_FILE)
    out = label(session_overrides, pairs=str(pairs))
    assert Path(out["path"]) == tmp_path / "heldout_labels.parquet"
    assert out["counts"] == {"ok": 60, "failed": 0} and out["labelled_now"] == 60
    assert 0.0 <= out["lookalike_misfit_share"] <= 1.0

    again = label(session_overrides, pairs=str(pairs))
    assert again["labelled_now"] == 0 and again["already"] == 60

    run = mlflow.search_runs(
        experiment_names=[load_config(session_overrides).mlflow.experiment],
        filter_string="tags.mlflow.runName = 'label'",
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )[0]
    assert run.data.metrics["labels_ok"] == 60 and run.data.metrics["labels_failed"] == 0
    assert "lookalike_misfit_share" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"label_scores.png", "label_card.md", "label_report.json"} <= artifacts
    card = mlflow.MlflowClient().download_artifacts(run.info.run_id, "label_card.md")
    text = Path(card).read_text()
    assert "| ok | 60 |" in text and "belongs" in text


def test_missing_pairs_file_is_one_error_line_naming_the_mining_flow(
    tmp_path, session_overrides, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        main(["--pairs", str(tmp_path / "nope.parquet"), *session_overrides])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:")
    assert "python -m flows.mining" in err and "nope.parquet" in err


def test_bad_override_is_one_error_line(capsys):
    with pytest.raises(SystemExit):
        main(["teacher.max_attempts=0"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "max_attempts" in err and "\n" not in err


@pytest.mark.slow
def test_label_shards_on_an_existing_dask_cluster_write_the_same_labels(
    world, pairs_table, tmp_path, session_overrides, prefect_harness
):
    """`pipeline.dask_address` hands the shards to a running cluster (two workers here)."""
    from distributed import LocalCluster

    shards = "teacher.shard_pairs=12"
    threads = small_pairs(pairs_table, tmp_path / "threads", 48)
    label([*session_overrides, shards], pairs=str(threads))
    on_dask = small_pairs(pairs_table, tmp_path / "dask", 48)
    with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster:
        runner = ["pipeline.runner=dask", f"pipeline.dask_address={cluster.scheduler_address}"]
        out = label([*session_overrides, shards, *runner], pairs=str(on_dask))
    assert out["labelled_now"] == 48
    assert labels_path(on_dask).read_bytes() == labels_path(threads).read_bytes()
