"""A killed flow leaves nothing behind: its Prefect server child dies with it, and its
MLflow and Prefect runs are closed (at once on SIGTERM, by the next run after SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from mars_core.infra.tracking import PID_TAG, STALE_TAG, ensure_experiment
from tasks.flow_process import dead_owner, owner_tag

WAIT_S = 300  # a loaded, shared machine: generous, never asserted


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait_for(what, condition, said=lambda: "", timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{said()}")


def _task_running(prefect_home: Path) -> bool:
    """Whether a task run of the flow has started its work (Prefect's own set-up of a task
    run is over: a signal landing inside that set-up ends the flow run FAILED, not CRASHED,
    because Prefect's crash handler then raises "Task run is not set")."""
    try:
        with sqlite3.connect(prefect_home / "prefect.db") as db:
            rows = db.execute("select state_type from task_run").fetchall()
    except sqlite3.OperationalError:  # not created yet, or busy: ask again
        return False
    return any(state == "RUNNING" for (state,) in rows)


def _flow_run_states(prefect_home: Path, pid: int) -> list[str]:
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute("select state_type, tags from flow_run").fetchall()
    return [state for state, tags in rows if owner_tag(pid) in json.loads(tags)]


@pytest.fixture
def flow_command(indexed, tmp_path):
    """`python -m flows.inference` over 40 requests (long enough to be killed mid-run), with
    a Prefect home of its own."""
    rows = pq.read_table(indexed.out_dir / "rooms.parquet").to_pylist()
    room = next(r["path"] for r in rows if r["room_type"] == "bedroom")
    requests = tmp_path / "requests.jsonl"
    line = json.dumps({"room": room, "query": "bed"}) + "\n"
    requests.write_text(line * 40)
    env = os.environ | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),  # this checkout's flows
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    return [sys.executable, "-m", "flows.inference", str(requests), *indexed.overrides], env


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_flow_is_cleaned_up(flow_command, tmp_path, sig):
    command, env = flow_command
    client = MlflowClient()
    experiment = ensure_experiment("mars")
    log = tmp_path / "flow.log"
    with log.open("w") as out:
        flow = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=out)
    try:

        def started() -> list:
            assert flow.poll() is None, log.read_text()  # still running, not failed
            return client.search_runs(
                [experiment], filter_string=f"tags.`{PID_TAG}` = '{flow.pid}'"
            )

        runs = _wait_for("the flow's MLflow run", started, log.read_text)
        prefect_home = Path(env["PREFECT_HOME"])
        _wait_for("its search task to run", lambda: _task_running(prefect_home), log.read_text)
        servers = _children(flow.pid)
        assert servers, "the flow runs its Prefect server as a child"
        flow.send_signal(sig)
        flow.wait(timeout=WAIT_S)
    finally:
        flow.kill()
    _wait_for("the server child to die with its parent", lambda: all(map(_gone, servers)))
    run_id = runs[0].info.run_id
    if sig == signal.SIGKILL:
        assert client.get_run(run_id).info.status == "RUNNING"  # nobody closed it
        assert dead_owner([owner_tag(flow.pid)]) == flow.pid
        one = tmp_path / "one.jsonl"
        one.write_text(Path(command[3]).read_text().splitlines()[0] + "\n")
        rerun = [*command[:3], str(one), *command[4:]]
        subprocess.run(rerun, env=env, cwd=tmp_path, check=True, capture_output=True)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED", (flow.returncode, log.read_text()[-3000:])
    assert (STALE_TAG in run.data.tags) == (sig == signal.SIGKILL)
    states = _flow_run_states(prefect_home, flow.pid)
    assert states and set(states) == {"CRASHED"}
