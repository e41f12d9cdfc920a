"""Prefect flows: compose the Hydra config, wire tasks, log to MLflow.

Importing this package sets up the process (offline, stores in the project, Java 21) before
Prefect, MLflow or pyserini are imported, and answers `python -m flows.<name> --help` (or a
config mistake) before the flow module's own imports take seconds.
"""

from mars_core.runtime import setup_runtime

setup_runtime()


def _answer_early() -> None:
    import sys

    if "-m" in getattr(sys, "orig_argv", [])[:3]:
        from flows.apps import APPS
        from mars_core.cli import answer_early

        answer_early(APPS, __name__)


_answer_early()
