"""The pipeline's one task: run a step's flow unless a run with the same fingerprint did.

The cache key is the step name, the fingerprint of what the step reads
(`mars_core.app.steps.step_fingerprint`) and this task's source; the overrides are left out on
purpose, so changing `train.learning_rate` re-runs only the steps whose inputs it changes.
The result (the step's report) is persisted, so a cached step still hands its report on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

STEP_CACHE = INPUTS - "run" - "overrides" + TASK_SOURCE


@task(name="pipeline-step", cache_policy=STEP_CACHE, persist_result=True)
def cached_step(
    run: Callable[[list[str]], Any], overrides: list[str], step: str, fingerprint: str
) -> Any:
    """`run(overrides)`: one step's flow, run as a subflow of this task."""
    return run(overrides)
