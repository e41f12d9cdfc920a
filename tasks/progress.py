"""Progress of a long task in the Prefect UI: a progress artifact the task updates as it goes,
beside the terminal bar (mapped steps show theirs as one task run per shard)."""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class PrefectProgress:
    """`progress(done, total)` moves the running task's progress artifact `key` to done/total."""

    def __init__(self, key: str, description: str) -> None:
        self.artifact = create_progress_artifact(0.0, key=key, description=description)

    def __call__(self, done: int, total: int) -> None:
        """Past the total is 100% (a run resumed from a checkpoint written past it by an older
        version): Prefect warns of anything over."""
        share = min(done, total) / max(total, 1)
        update_progress_artifact(self.artifact, round(100.0 * share, 1))

    def finish(self) -> None:
        """All done (a step that stops early, or had nothing to do, ends at 100% too)."""
        update_progress_artifact(self.artifact, 100.0)
