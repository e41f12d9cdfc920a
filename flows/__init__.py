"""Prefect flows: compose the Hydra config, wire tasks, log to MLflow.

Importing this package sets up the process (offline, stores in the project, Java 21) before
Prefect, MLflow or pyserini are imported.
"""

from mars_core.runtime import setup_runtime

setup_runtime()
