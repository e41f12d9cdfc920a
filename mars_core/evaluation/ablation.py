"""Run each configuration (a list of stage names, and an adapter for the agent) over the set.

A configuration is the funnel of `funnel.stages` = its stages, with the student given its
adapter (none = the base student). Stage 1 is narrowed to test-split products, so rankings
hold only products the student never saw in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from mars_core.agent.ordering import FITS_BY_SIGLIP
from mars_core.config import MarsConfig
from mars_core.evaluation.agreement import PairSpec, ScoredPair, agreement_metrics, score_pairs
from mars_core.evaluation.beyond import (
    AlternativesSought,
    alternatives_metrics,
    alternatives_sought,
    room_only_metrics,
    room_only_searches,
    room_truths,
)
from mars_core.evaluation.metrics import RankedRequest, all_metrics
from mars_core.evaluation.requests import EvalRequest, EvalSet
from mars_core.funnel.beyond import BeyondTheQuery
from mars_core.funnel.stages import AGENT, build_funnel
from mars_core.infra.errors import UserInputError
from mars_core.search.funnel import FunnelStep, SearchFunnel, SearchResult
from mars_core.search.types import Candidate, SearchRequest, StageOutput, WrappedStage
from mars_core.vision.images import load_image

if TYPE_CHECKING:  # opened by the stage registry
    from mars_core.agent.stage import AgentStage


@dataclass(frozen=True)
class Configuration:
    """One row of the ablation table."""

    stages: list[str]
    adapter: str | None = None  # folder or models:/<name>@<alias>; None = base student
    # a reference judge ranking these stages' candidates (evaluation/reference.py): its name
    reference: str | None = None
    ranker: str = ""  # who ranks a reference row's list, in words (the table's `ranked by`)

    @property
    def ranked_by(self) -> str:
        """Who decides this row's order: the reference's judge, the student, or the stages."""
        if self.ranker:
            return self.ranker
        return "student" if self.has_agent else "stage order"

    @property
    def name(self) -> str:
        label = "+".join(self.stages)
        if self.reference is not None:
            return f"{self.reference} on {label}"
        if AGENT in self.stages:
            label += f"@{adapter_label(self.adapter)}"
        return label

    @property
    def has_agent(self) -> bool:
        return AGENT in self.stages


@dataclass
class ConfigurationResult:
    """Every metric of one configuration, its rankings and its scored held-out pairs."""

    configuration: Configuration
    metrics: dict[str, float]
    ranked: list[RankedRequest]
    pairs: list[ScoredPair] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (request id, reason)
    note: str = ""  # what the table says beside the name (a student stopped by time)


def adapter_label(adapter: str | None) -> str:
    """`base`, the alias of a registry URI, or the folder's name."""
    if adapter is None:
        return "base"
    return adapter.rsplit("@", 1)[-1] if "@" in adapter else Path(adapter).name


def configurations(ablations: list[list[str]], adapters: list[str]) -> list[Configuration]:
    """Each ablation; those with the agent once with the base student and once per adapter."""
    found: list[Configuration] = []
    for stages in ablations:
        variants = [None, *adapters] if AGENT in stages else [None]
        found += [Configuration(list(stages), adapter) for adapter in variants]
    return found


@dataclass
class HeldOutOnly(WrappedStage):
    """Stage 1 narrowed to test-split products: fetches more, keeps the held-out ones."""

    keep: frozenset[str]
    overfetch: int  # eval.overfetch

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        output = self.stage.rank(request, candidates, k * self.overfetch)
        kept = [c for c in output.candidates if c.key in self.keep][:k]
        return dataclasses.replace(output, candidates=kept)


def configured(cfg: MarsConfig, configuration: Configuration) -> MarsConfig:
    """The config a configuration runs under: its stages and its adapter, without rationales
    (no metric reads them, and decoding them cost more than the ranking they explain)."""
    return dataclasses.replace(
        cfg,
        funnel=dataclasses.replace(
            cfg.funnel, stages=list(configuration.stages), rationale_top_n=0
        ),
        student=dataclasses.replace(cfg.student, adapter=configuration.adapter),
    )


def run_configuration(
    cfg: MarsConfig,
    eval_set: EvalSet,
    configuration: Configuration,
    pair_specs: list[PairSpec],
) -> ConfigurationResult:
    """Search every request with this configuration's funnel and measure it; what it offers
    beyond the query is measured for trained students only (the base student abstains on
    nearly every request, and its alternatives cost more than the rest of its row)."""
    run_cfg = configured(cfg, configuration)
    ranked: list[RankedRequest] = []
    failed: list[tuple[str, str]] = []
    sought: list[AlternativesSought] = []  # what was offered instead, and what it cost
    beyond: dict[str, float] = {}
    with build_funnel(run_cfg) as funnel:
        narrow_to_test_split(funnel, eval_set.test_keys, cfg.eval.overfetch)
        if configuration.has_agent and configuration.adapter is None:
            funnel.beyond = None  # an untrained student, asked on nearly every request
        for request, result in searched(funnel, eval_set, cfg, configuration.name, failed):
            ranked.append(ranked_request(request, result.results, result.nothing_fits))
            sought += filter(None, [alternatives_sought(request, result)])
        if funnel.beyond is not None:
            beyond = beyond_metrics(funnel, eval_set, cfg, sought)
        agent = agent_stage(funnel)
        pairs = (
            score_pairs(agent.scorer, pair_specs, cfg.data.max_image_pixels)
            if agent is not None
            else []
        )
    metrics = all_metrics(ranked, cfg.eval.measures, cfg.eval.ks)
    metrics["failed_requests"] = float(len(failed))
    metrics |= agreement_metrics(pairs, cfg.eval.fit_threshold) | beyond
    if agent is not None:
        metrics["siglip_blend"] = agent.ordering.siglip_blend
        metrics["order_fits_by_siglip"] = float(agent.ordering.order == FITS_BY_SIGLIP)
        metrics["min_fit_score"] = agent.ordering.min_fit_score
    return ConfigurationResult(configuration, metrics, ranked, pairs, failed)


def ranked_request(
    request: EvalRequest, candidates: list[Candidate], nothing_fits: bool
) -> RankedRequest:
    """What a configuration returned for one request, as the metrics read it."""
    return RankedRequest(
        request=request,
        keys=[c.key for c in candidates],
        categories=[c.product.get("category", "") for c in candidates],
        nothing_fits=nothing_fits,
    )


def searched(
    funnel: SearchFunnel,
    eval_set: EvalSet,
    cfg: MarsConfig,
    desc: str,
    failed: list[tuple[str, str]],
) -> Iterator[tuple[EvalRequest, SearchResult]]:
    """Every request of the set searched with `funnel`; one a user error stops is appended to
    `failed` with its reason and the rest go on."""
    for request in tqdm(eval_set.requests, desc=desc, unit="request"):
        try:
            room = load_image(request.room_path, cfg.data.max_image_pixels)
            result = funnel.search(SearchRequest(room, request.query, request.room_id))
        except UserInputError as e:
            failed.append((request.request_id, str(e)))
            continue
        yield request, result


def beyond_metrics(
    funnel: SearchFunnel, eval_set: EvalSet, cfg: MarsConfig, sought: list[AlternativesSought]
) -> dict[str, float]:
    """The alternatives' precision, recall and cost, then a room-only search of every
    held-out room."""
    rooms = room_truths(eval_set.judged or eval_set.requests)
    searches = room_only_searches(funnel, eval_set, cfg.data.max_image_pixels, AGENT)
    return alternatives_metrics(sought, rooms, cfg.funnel.alternatives) | room_only_metrics(
        list(searches), cfg.eval.ks, cfg.funnel.per_category
    )


def narrow_to_test_split(funnel: SearchFunnel, keep: frozenset[str], overfetch: int) -> None:
    """Stage 1, and the categories asked about beyond the query, keep held-out products."""
    first = funnel.steps[0]
    funnel.steps[0] = FunnelStep(HeldOutOnly(first.stage, keep, overfetch), first.k)
    if isinstance(funnel.beyond, BeyondTheQuery):
        funnel.beyond.keep, funnel.beyond.overfetch = keep, overfetch


def agent_stage(funnel: SearchFunnel) -> AgentStage | None:
    """The funnel's agent stage, when it runs one."""
    return next(
        (s.stage for s in funnel.steps if s.stage is not None and s.stage.name == AGENT), None
    )
