"""Assemble the configured funnel: only the stages that are switched on get loaded."""

from __future__ import annotations

from pathlib import Path

from mars_core.agent.stage import AgentStage
from mars_core.config import MarsConfig
from mars_core.embedder import Embedder
from mars_core.index.store import IndexSnapshot
from mars_core.search.funnel import FunnelStep, SearchFunnel
from mars_core.search.lexical import LexicalStage
from mars_core.search.visual import VisualStage

UNTRAINED_NOTICE = (
    "The agent is the untrained tiny model (random weights, no adapter): its scores are noise "
    "and it writes no rationales until training lands. The ranking shows the mechanics only."
)


def build_funnel(cfg: MarsConfig) -> SearchFunnel:
    """Stage 1 → 2 → 3 over the current index build, sized by `cfg.funnel`."""
    funnel = cfg.funnel
    snapshot = IndexSnapshot.current(cfg.index.dir)
    visual = None
    if funnel.use_siglip:
        embedder = Embedder.from_config(cfg.embedder, Path(cfg.paths.models))
        visual = VisualStage.open(snapshot, cfg.index, embedder, text_weight=funnel.text_weight)
    agent = AgentStage.from_config(cfg) if funnel.use_agent else None
    return SearchFunnel(
        [
            FunnelStep(LexicalStage.open(snapshot, cfg.index), funnel.k1),
            FunnelStep(visual, funnel.k2),
            FunnelStep(agent, funnel.k3),
        ],
        final_k=funnel.k3,
        min_fit_score=funnel.min_fit_score,
    )


def agent_notice(cfg: MarsConfig) -> str | None:
    """What a results page must say up front when the agent's scores mean nothing yet."""
    untrained = cfg.student.tiny is not None and cfg.student.adapter is None
    return UNTRAINED_NOTICE if cfg.funnel.use_agent and untrained else None
