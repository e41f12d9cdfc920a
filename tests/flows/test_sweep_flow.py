"""Sweeps of the train flow on the labelled session world, with tiny trainings: one parent run
(Prefect and MLflow) with a child per job, each a registered student with its params and its
validation and held-out metrics; the best on validation is the candidate; a failed job is
reported while the others finish; Optuna picks its best trial; the MLflow UI's compare view
lines the students up (headless Chromium)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from support.cdp import find_chromium, headless_page
from support.server_process import wait_until_healthy

from flows.train import SWEEP_ARTIFACT, train_sweep
from mars_core.infra.registry import CANDIDATE, alias_version
from mars_core.infra.runtime import setup_runtime

pytestmark = pytest.mark.slow

REGISTRY = "sweep-test-student"
EXPERIMENT = "sweep-test"
OBJECTIVE = "val.nDCG_at_10"
HEADLINE = ("nDCG_at_10", "context_violation_at_5", "abstain_nofit", "abstain_answerable")
# A student of two steps, measured on a few held-out requests: each job costs seconds.
KNOBS = [
    "train.max_steps=2",
    "train.eval_steps=2",
    "train.batch_size=4",
    "eval.max_queries=4",
    "funnel.alternative_pool=2",
]
CHROMIUM = find_chromium()
UI_START_S = 90


@pytest.fixture(scope="module")
def overrides(labelled) -> list[str]:
    return [
        *labelled.overrides,
        f"mlflow.experiment={EXPERIMENT}",
        f"student.registry={REGISTRY}",
        *KNOBS,
    ]


@pytest.fixture(scope="module")
def two_by_two(overrides, prefect_harness):
    return train_sweep(["train.learning_rate=1e-3,2e-3", "train.seed=0,1"], overrides=overrides)


def _children(parent_id: str):
    return mlflow.search_runs(
        experiment_names=[EXPERIMENT], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )


def test_a_two_by_two_sweep_is_one_parent_run_with_a_registered_student_per_job(two_by_two):
    report = two_by_two
    assert len(report.jobs) == 4 and not any(job.failed for job in report.jobs)
    children = _children(report.run_id)
    assert sorted(children["tags.mlflow.runName"]) == [
        "job 0: train.learning_rate=0.001 train.seed=0",
        "job 1: train.learning_rate=0.001 train.seed=1",
        "job 2: train.learning_rate=0.002 train.seed=0",
        "job 3: train.learning_rate=0.002 train.seed=1",
    ]
    swept = {
        (r["params.train.learning_rate"], r["params.train.seed"]) for _, r in children.iterrows()
    }
    assert swept == {("0.001", "0"), ("0.001", "1"), ("0.002", "0"), ("0.002", "1")}
    for _, run in children.iterrows():
        for metric in HEADLINE:
            assert run[f"metrics.val.{metric}"] == run[f"metrics.val.{metric}"]  # not NaN
            assert run[f"metrics.test.{metric}"] == run[f"metrics.test.{metric}"]
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{REGISTRY}'")
    assert len(versions) == 4
    assert {v.run_id for v in versions} == set(children["run_id"])
    assert all(len(v.tags) <= 12 and v.description for v in versions)
    best = max(report.jobs, key=lambda job: job.metrics[OBJECTIVE])
    assert report.best is not None and report.best.metrics[OBJECTIVE] == best.metrics[OBJECTIVE]
    assert alias_version(REGISTRY, CANDIDATE) == report.best.version
    table = mlflow.artifacts.load_text(f"runs:/{report.run_id}/{SWEEP_ARTIFACT}")
    rows = table.strip().splitlines()[2:]
    assert len(rows) == 4 and sum("**candidate**" in row for row in rows) == 1
    assert all("train.learning_rate=" in row and "train.seed=" in row for row in rows)
    assert report.table() == table


def test_the_sweep_is_one_prefect_parent_flow_run_with_a_child_per_job(two_by_two):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(two_by_two.flow_run_id)
        trains = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])), limit=200
        )
        children = [
            run
            for run in trains
            if run.parent_task_run_id is not None
            and client.read_task_run(run.parent_task_run_id).flow_run_id == parent.id
        ]
    assert parent.state.is_completed() and parent.flow_id != children[0].flow_id
    assert len(children) == 4 and all(run.state.is_completed() for run in children)


def test_a_failed_job_is_reported_and_the_others_finish(overrides, prefect_harness, tmp_path):
    """The second job's catalogue folder has no labels: it fails where it starts, the first
    trains, and the sweep ends with both in its report."""
    labelled = next(o for o in overrides if o.startswith("data.out_dir="))
    report = train_sweep([f"data.out_dir={labelled.partition('=')[2]},{tmp_path}"], overrides=[
        o for o in overrides if o != labelled
    ])  # fmt: skip
    first, second = report.jobs
    assert not first.failed and first.version is not None
    assert second.failed and "python -m flows.label" in second.error
    assert report.best is first
    assert "1 failed" in report.summary() and "failed: no labels.parquet" in report.table()


def test_an_optuna_sweep_of_three_trials_picks_the_best_validation_value(
    overrides, prefect_harness
):
    report = train_sweep(["hparams_search=optuna", "hydra.sweeper.n_trials=3"], overrides=overrides)
    assert len(report.jobs) == 3 and not any(job.failed for job in report.jobs)
    values = [job.metrics[OBJECTIVE] for job in report.jobs]
    assert report.best.metrics[OBJECTIVE] == max(values)
    found = yaml.safe_load((Path(report.folder) / "optimization_results.yaml").read_text())
    assert found["best_value"] == pytest.approx(max(values))
    rates = {o for job in report.jobs for o in job.overrides if "learning_rate=" in o}
    assert len(rates) == 3  # Optuna sampled a learning rate per trial


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no chromium here: `apt-get install chromium` (.ci/run does)",
)
def test_the_mlflow_compare_view_lines_the_sweep_s_students_up(two_by_two, tmp_path):
    """`mlflow ui` on the project's store, its compare view of the four child runs: every run
    and the headline metric columns are on the page a person opens."""
    children = _children(two_by_two.run_id)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    ids = ",".join(f'"{run_id}"' for run_id in children["run_id"])
    with mlflow_ui(tmp_path) as url:
        page_url = f'{url}/#/compare-runs?runs=[{ids}]&experiments=["{experiment}"]'
        with headless_page(CHROMIUM, tmp_path / "chromium", page_url) as page:
            page.wait_for("document.body.innerText.includes('val.nDCG_at_10')", 120)
            text = page.evaluate("document.body.innerText")
            page.screenshot(tmp_path / "compare.png")
    for name in children["tags.mlflow.runName"]:
        assert name in text  # each student by what it varied
    for metric in HEADLINE:
        assert f"val.{metric}" in text and f"test.{metric}" in text
    assert "train.learning_rate" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_ui(folder: Path) -> Iterator[str]:
    """`mlflow server` on the project's MLflow store, on loopback, for one test; its URL."""
    port = _free_port()
    log = folder / "mlflow-ui.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", setup_runtime().mlflow_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, log, what="mlflow ui", within_s=UI_START_S)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
