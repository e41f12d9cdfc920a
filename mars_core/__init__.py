"""MARS library: catalogue ingest, indexes, the search funnel and its agent, tiny models.

Nothing here imports Prefect; Hydra only in `compose`, the one module that composes
the YAML into the validated `MarsConfig`. Layers (pyproject.toml, `lint-imports`) keep
imports one way: a module imports only from its own layer or those below it.

Importing it changes nothing in the process: every entry point (`mars_core.app.cli.run_app`,
a flow module's first statement `answer_early`, each bench script) sets the process up itself
with `mars_core.infra.runtime.setup_runtime()`, before the imports that read the environment.
"""

__version__ = "0.1.0"
