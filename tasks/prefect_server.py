"""The one place that changes Prefect's private parts: its temporary API server.

Written for Prefect 3.9.1 (`PATCHED_FOR`); `tests/tasks/test_prefect_server.py` fails on any
other version, so moving the pin means reading `prefect/server/api/server.py` again first.

A flow command with no `PREFECT_API_URL` runs on a temporary API server that Prefect starts
as a child process (`SubprocessASGIServer` in `prefect.server.api.server`, a private class).
Prefect offers no setting for what a command needs of it, so `patch_temporary_server`
replaces two names of that module:

* its `subprocess`, with one whose `Popen` children get SIGTERM when this process dies, even
  by SIGKILL (`mars_core.infra.runtime.die_with_parent`): the server never outlives its
  command as an orphan;
* `SubprocessASGIServer.start`, with one that waits `pipeline.prefect_start_timeout_s`, tries
  once more when that runs out (a busy machine), then ends in `PrefectStartError` naming the
  knob; after a start it calls the command's `after_start` (the sweep of runs that killed
  processes left unfinished).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from mars_core.infra.errors import UserInputError
from mars_core.infra.runtime import die_with_parent

PATCHED_FOR = "3.9.1"  # the Prefect version whose private server module this patches
SERVER_MODULE = "prefect.server.api.server"
START_TRIES = 2  # a first start that times out is tried once more
START_TIMEOUT_KNOB = "pipeline.prefect_start_timeout_s"
# What the patched start reads, set by the last `patch_temporary_server` of this process (a
# second flow command in one process changes these and patches nothing twice).
_settings: dict[str, Any] = {}


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


def patch_temporary_server(timeout_s: float, after_start: Callable[[], object]) -> None:
    """Patch Prefect's server module as the module docstring says (imported here: a flow on
    the temporary API imports it anyway, when its client starts the server)."""
    import importlib

    first = not _settings
    _settings.update(timeout_s=timeout_s, after_start=after_start)
    if not first:
        return
    server = importlib.import_module(SERVER_MODULE)
    server.subprocess = _DyingWithParent()
    start = server.SubprocessASGIServer.start

    def start_then_sweep(self: Any, timeout: int | None = None) -> None:
        if self.running:
            return
        start_within(start, self, _settings["timeout_s"])
        _settings["after_start"]()

    server.SubprocessASGIServer.start = start_then_sweep
