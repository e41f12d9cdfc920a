"""Prefect tasks: each calls one mars_core function and returns its report dataclass (or a
path); the download task retries with back-off.

Importing this package sets up the process before Prefect is imported (see mars_core.runtime).
"""

from mars_core.runtime import setup_runtime

setup_runtime()
