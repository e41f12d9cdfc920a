"""A flow command's Prefect set-up: its temporary API server starts within a set time, cleans
up after killed processes, and leaves nothing behind when this one is killed.

Every flow's `main` calls `prepare_flow_process(cfg)` explicitly, after its inputs are
checked and before its flow starts. When the flow will run on Prefect's temporary API server
(no `PREFECT_API_URL`), from the moment that server starts:

* the server gets `pipeline.prefect_start_timeout_s` to answer, and one more try (a busy
  machine can be slow to start it); if it still does not, the command ends in one `error:`
  line naming the knob (`PrefectStartError`);
* that server, a child process, gets SIGTERM when this process dies, even by SIGKILL,
  instead of living on as an orphan (these two patch Prefect's private server module, in
  `tasks/prefect_server.py` alone);
* flow runs still RUNNING or PENDING whose owner process is gone are set Crashed when that
  server has started (MLflow runs get the same sweep in `mars_core.infra.tracking.mlflow_run`);
* every flow run this process starts carries the tag `mars-owner:<host>:<pid>`;
* a user's mistake raised inside a task anyway (`UserInputError`) is logged by Prefect on the
  terminal without its traceback: the command's one `error:` line says it (`--debug` keeps
  the tracebacks; the Prefect UI always has them).

A SIGTERM is turned into `SystemExit` by `mars_core.app.cli.run_app` (and the JVM, started with
`-Xrs`, leaves it to Python), so Prefect and MLflow close their runs as crashed / failed
then and there.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from mars_core.config import MarsConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.runtime import process_alive
from tasks.prefect_server import patch_temporary_server

OWNER_TAG = "mars-owner:"  # + "<host>:<pid>"
STALE_SWEEP_LIMIT = 200  # unfinished flow runs looked at per sweep
# Entered for the life of the process (a context that is never left): see `claim_flow_runs`.
_claim: list[Any] = []


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


def drop_user_error_traceback(record: logging.LogRecord) -> bool:
    """A terminal handler's filter: a record about a `UserInputError` loses its traceback (the
    message, naming the error, stays)."""
    if record.exc_info and isinstance(record.exc_info[1], UserInputError):
        record.exc_info, record.exc_text = None, None
    return True


def prepare_flow_process(cfg: MarsConfig, *, debug: bool = False) -> None:
    """Tag this process's flow runs; keep user errors' tracebacks off the terminal unless
    `debug`; without `PREFECT_API_URL` (flows on Prefect's temporary API server), make that
    server start in time, die with this process and sweep up after killed ones
    (`tasks.prefect_server`)."""
    from prefect.settings import PREFECT_API_URL

    claim_flow_runs()
    if not debug:
        for handler in logging.getLogger().handlers:  # Prefect's console handler
            if drop_user_error_traceback not in handler.filters:
                handler.addFilter(drop_user_error_traceback)
    if not PREFECT_API_URL.value():
        patch_temporary_server(cfg.pipeline.prefect_start_timeout_s, crash_stale_flow_runs)
