"""MARS library: catalogue, search stages, funnel, mining, teachers, SFT data and metrics.

Nothing here imports Prefect or Hydra; flows compose config and call into this package.
"""

from mars_core.runtime import apply_offline_env

apply_offline_env()

__version__ = "0.1.0"
