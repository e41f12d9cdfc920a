"""MARS library: catalogue ingest, indexes, the search funnel and its agent, tiny models.

Nothing here imports Prefect; Hydra only in `compose`, the one module that composes
the YAML into the validated `MarsConfig`. Layers (pyproject.toml, `lint-imports`) keep
imports one way: a module imports only from its own layer or those below it.
"""

from mars_core.infra.runtime import apply_offline_env

apply_offline_env()

__version__ = "0.1.0"
