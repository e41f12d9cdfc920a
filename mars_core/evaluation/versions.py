"""What the registry says about the evaluated student versions, and what they say back.

Before the configurations run, a candidate version without a chosen ordering gets one
(`evaluation/ordering.py`), so it is measured as it will serve. After them, every evaluated
version gets its headline metrics as version tags (`eval.<metric>`, with `eval.judged_by`), so
the MLflow registry page shows why the champion is the champion, and a version that training
stopped by the clock is marked in the table.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mars_core.agent.adapter import registry_version
from mars_core.agent.ordering import ORDER_TAG
from mars_core.config import MarsConfig
from mars_core.evaluation.ablation import ConfigurationResult
from mars_core.evaluation.ordering import choose_ordering, record_ordering
from mars_core.infra.tracking import describe_version, version_tags
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
    ordering, values = choose_ordering(cfg, adapter)
    record_ordering(*version, ordering, values)


def tag_versions(results: list[ConfigurationResult], headline: list[str], judged_by: str) -> None:
    """Each registry version's headline metrics as its tags; mark one stopped by time."""
    for result in results:
        version = registry_version(result.configuration.adapter)
        if version is None or not result.configuration.has_agent:
            continue
        if version_tags(*version).get("stopped_by") == "time":
            result.note = STOPPED_BY_TIME_NOTE
        metrics = {f"eval.{m}": f"{result.metrics[m]:.3f}" for m in headline if m in result.metrics}
        describe_version(*version, tags=metrics | {"eval.judged_by": judged_by})
