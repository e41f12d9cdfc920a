"""The training run's callbacks: the wall-clock safety net and the metric history.

They subclass transformers' `TrainerCallback`, so this module imports transformers;
`mars_core.training.trainer` imports it only when it trains, and stays light to import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Stops training once `seconds` of wall time have passed (0 = never), after one last
    validation and checkpoint, so the best model so far is what gets saved."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.exceeded = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.seconds and time.monotonic() - self.started > self.seconds:
            self.exceeded = True
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True
        return control


class History(TrainerCallback):
    """Keeps every logged metric by step and hands it on (MLflow curves)."""

    def __init__(self, on_log: Callable[[dict[str, float], int], None] | None) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.sink = on_log

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if _number(v)}
        self.rows.append((state.global_step, numbers))
        if self.sink is not None:
            self.sink(numbers, state.global_step)

    def replay(self, log_history: list[dict[str, Any]]) -> None:
        """A finished run's logged metrics (a trainer state's `log_history`), as if logged now."""
        for entry in log_history:
            numbers = {k: float(v) for k, v in entry.items() if k != "step" and _number(v)}
            self.rows.append((int(entry["step"]), numbers))
            if self.sink is not None:
                self.sink(numbers, int(entry["step"]))

    def series(self, name: str) -> list[tuple[int, float]]:
        return [(step, row[name]) for step, row in self.rows if name in row]


def _number(value: Any) -> bool:
    return isinstance(value, int | float)
