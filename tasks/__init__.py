"""Prefect tasks: thin wrappers over mars_core that add caching, retries, logging, progress.

Importing this package sets up the process before Prefect is imported (see mars_core.runtime).
"""

from mars_core.runtime import setup_runtime

setup_runtime()
