"""The patch of Prefect's private temporary server (`tasks/prefect_server.py`): written for one
Prefect version, and its start tried once more before it fails naming the knob."""

from __future__ import annotations

import prefect
import pytest

from tasks.prefect_server import (
    PATCHED_FOR,
    START_TIMEOUT_KNOB,
    PrefectStartError,
    start_within,
)


def test_the_patch_is_for_the_installed_prefect_3_9_1():
    """Fails on any other Prefect: read `SubprocessASGIServer.start` and the module's
    `subprocess` use in prefect/server/api/server.py again, then move the pin and this."""
    assert prefect.__version__ == PATCHED_FOR == "3.9.1", (
        f"tasks/prefect_server.py patches Prefect {PATCHED_FOR}'s private server module; "
        f"Prefect {prefect.__version__} is installed"
    )


class _SlowServer:
    """A server whose first start times out (as Prefect words it) and whose second works."""

    def __init__(self, failures: int) -> None:
        self.failures, self.timeouts, self.server_process = failures, [], None

    def start(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if len(self.timeouts) <= self.failures:
            raise RuntimeError("Timed out while attempting to connect to ephemeral server.")


def test_a_slow_first_start_is_tried_once_more():
    server = _SlowServer(failures=1)
    start_within(_SlowServer.start, server, 7.0)
    assert server.timeouts == [7.0, 7.0]
    with pytest.raises(PrefectStartError, match=START_TIMEOUT_KNOB):
        start_within(_SlowServer.start, _SlowServer(failures=2), 7.0)
