"""The commands that run no Prefect flow, because a person waits for them: `search` (one room
photo and one query, `mars-search`) and `serve` (the service and web page, `mars-serve`).

Each module's top is light (its `--help` answers before a model could load); the funnel's
modules are imported when the command runs.
"""
