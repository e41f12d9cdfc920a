"""prefect.yaml deploys on a local Prefect server, `reindex/nightly` runs through a process
worker, and a sweep deployment run with typed parameters trains its jobs as runs on the work
pool: the commands of docs/deployments.md ("Prefect deployments"), as a user types them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from support.server_process import wait_until_healthy

REPO = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
POOL = "mars"
GPU_POOL = "mars-gpu"
SERVER_START_S = 60
RUN_S = 120
# every flow of flows/ has a deployment
FLOW_FUNCTIONS = {
    "pipeline",
    "ingest",
    "build_index",
    "mining",
    "label",
    "train",
    "train_sweep",
    "evaluate",
    "inference",
}
# A sweep of two tiny students trained by the worker: each job a train/manual run on the pool.
SWEEP_KNOBS = ["train.eval_steps=2", "train.batch_size=4", "eval.max_queries=4"]
SWEEP_S = 420


@dataclass(frozen=True)
class Server:
    """A local Prefect server and the environment that points the CLI at it."""

    api: str
    env: dict[str, str]

    def prefect(self, *args: str) -> str:
        """Run a `prefect` command from the checkout, as docs/deployments.md does; its output."""
        done = subprocess.run(
            [str(PREFECT), *args], cwd=REPO, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """One API request, re-sent while the server answers 503 (busy: its SQLite database is
        locked by a worker's writes), as Prefect's own client re-sends it."""
        for wait_s in (0.5, 1, 2, 4, 8):
            response = httpx.request(method, f"{self.api}{path}", **kwargs)
            if response.status_code != 503:
                return response
            time.sleep(wait_s)
        return response

    def get(self, path: str) -> dict:
        response = self.call("GET", path)
        response.raise_for_status()
        return response.json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A background `prefect` process in its own process group (so its children end with it)."""
    with log.open("w") as out:
        return subprocess.Popen(
            [str(PREFECT), *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`prefect server start --host 127.0.0.1` on a free port, its home in tmp."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PWD": str(REPO),  # prefect.yaml's `{{ $PWD }}`: the checkout the worker runs from
    }
    process = start(
        ["server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path / "server.log",
    )
    try:
        wait_until_healthy(
            api, process, tmp_path / "server.log", what="prefect server", within_s=SERVER_START_S
        )
        yield Server(api, env)
    finally:
        stop(process)


def nightly_in_file() -> dict:
    """The `nightly` deployment of prefect.yaml, as written."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return next(d for d in spec["deployments"] if d["name"] == "nightly")


@pytest.mark.slow
def test_every_flow_deploys_and_the_nightly_reindex_runs_through_a_worker(
    server, indexed, labelled, tmp_path
):
    server.prefect("work-pool", "create", POOL, "--type", "process")
    server.prefect("work-pool", "create", GPU_POOL, "--type", "process")
    server.prefect("deploy", "--all")

    written = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    deployed = server.call("POST", "/deployments/filter", json={}).json()
    assert len(deployed) == len(written)
    assert {d["entrypoint"].rsplit(":", 1)[1] for d in written} == FLOW_FUNCTIONS
    nightly = server.get("/deployments/name/reindex/nightly")
    assert nightly["work_pool_name"] == POOL
    [schedule] = nightly["schedules"]
    in_file = nightly_in_file()["schedules"][0]
    assert schedule["schedule"]["cron"] == in_file["cron"]
    assert schedule["schedule"]["timezone"] == in_file["timezone"]

    check_typed_parameters(server)
    on_pool = [*labelled.overrides, *SWEEP_KNOBS, f"sweep.work_pool={POOL}"]
    sweep_run = server.prefect(
        "deployment", "run", "train-sweep/manual",
        "--param", 'sweep=["train.seed=0,1"]',
        "--param", "max_steps=2",
        "--param", f"overrides={json.dumps(on_pool)}",
    )  # fmt: skip
    sweep_id = re.search(r"UUID: ([0-9a-f-]{36})", sweep_run).group(1)

    printed = server.prefect(
        "deployment",
        "run",
        "reindex/nightly",
        "--param",
        f"overrides={json.dumps(indexed.overrides)}",
    )
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", printed).group(1)
    assert server.get(f"/flow_runs/{run_id}")["parameters"] == {"overrides": indexed.overrides}
    # One re-index through the worker is enough: the one the pipeline's hand-over starts.
    assert server.call("DELETE", f"/flow_runs/{run_id}").status_code == 204

    worker_log = tmp_path / "worker.log"
    worker = start(["worker", "start", "--pool", POOL], server.env, worker_log)
    try:
        handed_over = run_on_pool_in_subprocess(server, "reindex", POOL, indexed.overrides)
        swept = wait_for_run(server, sweep_id, SWEEP_S)
    finally:
        stop(worker)
    assert handed_over.returncode == 0, handed_over.stderr + worker_log.read_text()
    assert handed_over.stdout.split()[-1] == "COMPLETED"
    assert swept["state_type"] == "COMPLETED", worker_log.read_text()[-3000:]
    check_the_sweep_trained_on_the_pool(server, sweep_id)

    nowhere = run_on_pool_in_subprocess(server, "train", "no-such-pool", [])
    assert "no deployment of the train flow on work pool 'no-such-pool'" in nowhere.stderr


def check_typed_parameters(server: Server) -> None:
    """The run forms of train and train-sweep have a typed field per named parameter."""
    train = server.get("/deployments/name/train/manual")["parameter_openapi_schema"]
    fields = train["properties"]
    assert {"experiment", "max_steps", "learning_rate", "seed", "overrides"} <= set(fields)
    assert _types(fields["max_steps"]) == {"integer", "null"}
    assert _types(fields["learning_rate"]) == {"number", "null"}
    assert _types(fields["overrides"]) >= {"array"}
    assert "training steps" in fields["max_steps"]["description"]
    sweep = server.get("/deployments/name/train-sweep/manual")["parameter_openapi_schema"]
    assert "sweep" in sweep["required"] and _types(sweep["properties"]["sweep"]) == {"array"}


def _types(field: dict) -> set[str]:
    return {option.get("type") for option in field.get("anyOf", [field])}


def wait_for_run(server: Server, run_id: str, timeout_s: float) -> dict:
    """The flow run once it has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = server.get(f"/flow_runs/{run_id}")
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} not over in {timeout_s} s")


def check_the_sweep_trained_on_the_pool(server: Server, sweep_id: str) -> None:
    """Both jobs were train/manual runs on the pool, children of the sweep's flow run, each
    trained with the typed `max_steps` and logged as a child of the sweep's MLflow run."""
    import mlflow

    runs = server.call("POST", "/flow_runs/filter", json={}).json()
    jobs = [
        r
        for r in runs
        if r["parent_task_run_id"]
        and server.get(f"/task_runs/{r['parent_task_run_id']}")["flow_run_id"] == sweep_id
    ]
    assert len(jobs) == 2 and {r["state_type"] for r in jobs} == {"COMPLETED"}
    assert {r["work_pool_name"] for r in jobs} == {POOL}
    parent_runs = {r["parameters"]["sweep_run"] for r in jobs}
    assert len(parent_runs) == 1
    children = mlflow.search_runs(
        experiment_names=["mars"],
        filter_string=f"tags.mlflow.parentRunId = '{parent_runs.pop()}'",
    )
    assert len(children) == 2
    assert set(children["params.train.max_steps"]) == {"2"}
    assert set(children["params.train.seed"]) == {"0", "1"}
    assert all(children["metrics.val.nDCG_at_10"] == children["metrics.val.nDCG_at_10"])


def test_sft_has_a_deployment_on_the_gpu_pool_the_pipeline_hands_training_to():
    written = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    on_gpu = [d for d in written if d["work_pool"]["name"] == GPU_POOL]
    assert [d["entrypoint"] for d in on_gpu] == ["flows/train.py:train"]
    from mars_core.app.compose import load_config

    cfg = load_config([f"pipeline.train_work_pool={GPU_POOL}"])
    assert cfg.pipeline.train_work_pool == GPU_POOL


RUN_ON_POOL = """
import json, sys
from flows.runners import run_on_pool
run = run_on_pool(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
print(run.state.type.value)
"""


def run_on_pool_in_subprocess(
    server: Server, flow: str, pool: str, overrides: list[str]
) -> subprocess.CompletedProcess:
    """`flows.runners.run_on_pool` as the pipeline calls it, against the test's server."""
    return subprocess.run(
        [sys.executable, "-c", RUN_ON_POOL, flow, pool, json.dumps(overrides)],
        cwd=REPO, env=server.env, capture_output=True, text=True, timeout=RUN_S,
    )  # fmt: skip
