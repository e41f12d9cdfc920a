"""Prefect flows: compose the Hydra config, wire tasks, log to MLflow.

Importing this package sets up the process (offline, stores in the project, Java 21) before
Prefect, MLflow or pyserini are imported, and answers `python -m flows.<name> --help` (or a
config mistake) before the flow module's own imports take seconds.
"""

from mars_core.runtime import setup_runtime

setup_runtime()


# Commands that run no Prefect flow (a person waits for them; no Prefect import).
PREFECT_FREE = ("search", "serve")


def _answer_early() -> None:
    """Answer `--help` and config mistakes; then, for a flow command, clean up after killed
    runs and make sure this one leaves nothing behind (`flows.hygiene`)."""
    from mars_core.cli import answer_early, invoked_command

    invoked = invoked_command(__name__)
    if invoked is None:
        return
    from flows.apps import APPS

    answer_early(APPS, __name__)
    if invoked[0] in APPS and invoked[0] not in PREFECT_FREE:
        from flows.hygiene import prepare_flow_process

        prepare_flow_process()


_answer_early()
