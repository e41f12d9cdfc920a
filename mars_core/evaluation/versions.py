"""What the registry says about the evaluated student versions, and where their numbers go.

Before the configurations run, a candidate version without a chosen ordering gets one
(`evaluation/ordering.py`), so it is measured as it will serve. After them, a version that
training stopped by the clock is marked in the table, and each version's run (the run that
trained it) is found, so its held-out metrics join its params and curves there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mars_core.agent.ordering import ORDER_TAG
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import ConfigurationResult
from mars_core.evaluation.ordering import choose_ordering, record_ordering
from mars_core.infra.registry import registry_version, version_run_id, version_tags
from mars_core.teacher.schema import LABELS_FILE

logger = logging.getLogger(__name__)
STOPPED_BY_TIME_NOTE = "stopped by time"


def order_candidate(cfg: MarsConfig, adapter: str) -> None:
    """Choose and record the ordering of the version `adapter` names, unless it has one (or
    there are no teacher labels to find training's validation rooms by)."""
    version = registry_version(adapter)
    if version is None or ORDER_TAG in version_tags(*version):
        return
    if not (Path(cfg.data.out_dir) / LABELS_FILE).is_file():
        logger.warning("no %s: the agent's ordering is not chosen on validation", LABELS_FILE)
        return
    record_ordering(*version, choose_ordering(cfg, adapter).ordering)


def mark_stopped_by_time(results: list[ConfigurationResult]) -> None:
    """A note beside each student that training stopped by the clock (machine-dependent)."""
    for result in results:
        version = registry_version(result.configuration.adapter)
        if version is not None and version_tags(*version).get("stopped_by") == "time":
            result.note = STOPPED_BY_TIME_NOTE


def trained_by(result: ConfigurationResult) -> str | None:
    """The MLflow run that trained the student a configuration ran with (none for a folder or
    the base student)."""
    version = registry_version(result.configuration.adapter)
    if version is None or not result.configuration.has_agent:
        return None
    return version_run_id(*version)
