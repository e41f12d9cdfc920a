"""A flow command's Prefect set-up: its temporary API server starts within a set time, cleans
up after killed processes, and leaves nothing behind when this one is killed.

Every flow's `main` calls `prepare_flow_process(cfg)` explicitly, after its inputs are
checked and before its flow starts. It costs nothing until the flow starts Prefect's
temporary API server, and then:

* the server gets `pipeline.prefect_start_timeout_s` to answer, and one more try (a busy
  machine can be slow to start it); if it still does not, the command ends in one `error:`
  line naming the knob (`PrefectStartError`);
* that server, a child process, gets SIGTERM when this process dies, even by SIGKILL
  (`mars_core.infra.runtime.die_with_parent`), instead of living on as an orphan;
* flow runs still RUNNING or PENDING whose owner process is gone are set Crashed (MLflow
  runs get the same sweep in `mars_core.infra.tracking.mlflow_run`);
* every flow run this process starts carries the tag `mars-owner:<host>:<pid>`;
* a user's mistake raised inside a task anyway (`UserInputError`) is logged by Prefect on the
  terminal without its traceback: the command's one `error:` line says it (`--debug` keeps
  the tracebacks; the Prefect UI always has them).

A SIGTERM is turned into `SystemExit` by `mars_core.app.cli.run_app` (and the JVM, started with
`-Xrs`, leaves it to Python), so Prefect and MLflow close their runs as crashed / failed
then and there.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mars_core.config import MarsConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.runtime import die_with_parent, process_alive

SERVER_MODULE = "prefect.server.api.server"  # holds SubprocessASGIServer, the temporary API
OWNER_TAG = "mars-owner:"  # + "<host>:<pid>"
STALE_SWEEP_LIMIT = 200  # unfinished flow runs looked at per sweep
START_TRIES = 2  # a first start that times out is tried once more
START_TIMEOUT_KNOB = "pipeline.prefect_start_timeout_s"
# Entered for the life of the process (a context that is never left): see `claim_flow_runs`.
_claim: list[Any] = []
# The start timeout of this process's last `prepare_flow_process` (the patch reads it, so a
# second flow command in one process patches nothing twice).
_start_timeout_s: list[float] = []


def owner_tag(pid: int | None = None) -> str:
    """The tag naming the process (on this machine) that runs a flow."""
    return f"{OWNER_TAG}{socket.gethostname()}:{pid or os.getpid()}"


def dead_owner(tags: list[str]) -> int | None:
    """The owner pid among `tags` when that process, on this machine, is gone; else None."""
    host = socket.gethostname()
    for tag in tags:
        owner_host, _, pid = tag.removeprefix(OWNER_TAG).rpartition(":")
        if tag.startswith(OWNER_TAG) and owner_host == host and pid.isdigit():
            return None if process_alive(int(pid)) else int(pid)
    return None


def claim_flow_runs() -> None:
    """Tag every flow run this process starts with `owner_tag()` (Prefect's tags context,
    entered once and kept for the life of the process)."""
    from prefect.context import TagsContext

    if not _claim:
        context = TagsContext(current_tags={*TagsContext.get().current_tags, owner_tag()})
        context.__enter__()
        _claim.append(context)


def crash_stale_flow_runs() -> list[str]:
    """Set Crashed the unfinished flow runs whose owner process is gone; their ids."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    unfinished = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    crashed = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=unfinished)),
            limit=STALE_SWEEP_LIMIT,
        )
        for run in runs:
            pid = dead_owner(list(run.tags))
            if pid is not None:
                state = Crashed(message=f"process {pid} ended without closing this run")
                client.set_flow_run_state(run.id, state, force=True)
                crashed.append(str(run.id))
    return crashed


class PrefectStartError(UserInputError):
    """Prefect's temporary API server did not answer in time, twice (a busy machine)."""


class _DyingWithParent:
    """`subprocess` as Prefect's server module sees it: each child dies with this process."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(*args, preexec_fn=die_with_parent, **kwargs)


def _end_attempt(server: Any) -> None:
    """Stop the server process of an attempt that timed out (Prefect leaves it running)."""
    process = server.server_process
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait()


def start_within(start: Callable[..., None], server: Any, timeout_s: float) -> None:
    """`start(server, timeout_s)`, tried `START_TRIES` times when it times out; then a
    `PrefectStartError` naming the knob."""
    for _ in range(START_TRIES):
        try:
            start(server, timeout_s)
            return
        except RuntimeError as e:
            if "Timed out" not in str(e):
                raise
            _end_attempt(server)
    raise PrefectStartError(
        f"Prefect's temporary API server did not start within {timeout_s:g} s, "
        f"{START_TRIES} tries (a busy machine?): raise {START_TIMEOUT_KNOB}"
    )


def patch_server(server: ModuleType) -> None:
    """Prefect's temporary API server (`SubprocessASGIServer`) dies with this process (its
    module's `subprocess` is swapped for one whose children do), starts within the set
    timeout (`start_within`), and its first start sweeps the runs killed processes left
    unfinished."""
    server.subprocess = _DyingWithParent()
    start = server.SubprocessASGIServer.start

    def start_then_sweep(self: Any, timeout: int | None = None) -> None:
        if self.running:
            return
        start_within(start, self, _start_timeout_s[0])
        crash_stale_flow_runs()

    server.SubprocessASGIServer.start = start_then_sweep


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `patch(module)` right after module `name` is first imported (by anyone)."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        run_module = spec.loader.exec_module

        def run_then_patch(module: ModuleType) -> None:
            run_module(module)
            self.patch(module)

        spec.loader.exec_module = run_then_patch
        return spec


def drop_user_error_traceback(record: logging.LogRecord) -> bool:
    """A terminal handler's filter: a record about a `UserInputError` loses its traceback (the
    message, naming the error, stays)."""
    if record.exc_info and isinstance(record.exc_info[1], UserInputError):
        record.exc_info, record.exc_text = None, None
    return True


def prepare_flow_process(cfg: MarsConfig, *, debug: bool = False) -> None:
    """Tag this process's flow runs; keep user errors' tracebacks off the terminal unless
    `debug`; patch Prefect's server module when it is imported (or now, when it already is)."""
    claim_flow_runs()
    if not debug:
        for handler in logging.getLogger().handlers:  # Prefect's console handler
            if drop_user_error_traceback not in handler.filters:
                handler.addFilter(drop_user_error_traceback)
    first = not _start_timeout_s
    _start_timeout_s[:] = [cfg.pipeline.prefect_start_timeout_s]
    if not first:
        return
    if SERVER_MODULE in sys.modules:
        patch_server(sys.modules[SERVER_MODULE])
    else:
        sys.meta_path.insert(0, _AfterImport(SERVER_MODULE, patch_server))
