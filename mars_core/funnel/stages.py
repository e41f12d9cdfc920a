"""Funnel stages by name: a registry of stage factories and the funnel built from a list.

`funnel.stages: [bm25, siglip, agent]` (and every ablation of the evaluation) names stages
from this registry, as open_clip names its models. The registry is the only home of a stage's
name: the stages get theirs when they are opened, the funnel knows none, the results table
and page take their columns from the registered stages, and code that needs a name imports
it from here (`BM25`, `SIGLIP`, `AGENT`). Adding a stage is its module plus one
`register_stage` below (docs/architecture.md, "Adding a funnel stage").

This module sits above both the search stages (`mars_core.search`) and the agent
(`mars_core.agent`), so neither imports the other's assembly. Each factory imports its stage
when it is called, and the index checks are imported when a funnel is built: naming, listing
and validating stages (at config composition, so every `--help` and `--cfg job`) imports
neither torch nor LanceDB, and only the stages asked for load their models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mars_core.agent.adapter import serving_adapter
from mars_core.config import FunnelConfig, MarsConfig, VocabularyConfig
from mars_core.funnel.beyond import BeyondTheQuery
from mars_core.index.store import IndexSnapshot
from mars_core.infra.errors import ConfigError, UserInputError
from mars_core.search.funnel import FunnelStep, SearchFunnel
from mars_core.search.types import Stage, WrappedStage

if TYPE_CHECKING:  # imported by their factories: naming stages loads no model
    from mars_core.agent.stage import AgentStage
    from mars_core.vision.embedder import Embedder

UNTRAINED_NOTICE = (
    "The agent is the untrained tiny model (random weights, no trained student in the registry "
    "yet): its scores are noise. Run `python -m flows.pipeline` to train and promote one."
)


@dataclass
class LoadedModels:
    """The models stages load that do not change with the index build (the embedder), kept
    by a caller that opens one build after another (the service follows every re-index) so
    each is loaded once and shared; a funnel built without one loads its own."""

    embedder: Embedder | None = None

    def embedder_for(self, cfg: MarsConfig) -> Embedder:
        """The configured embedder, loaded on first use."""
        if self.embedder is None:
            from mars_core.vision.embedder import Embedder

            self.embedder = Embedder.from_config(
                cfg.embedder, Path(cfg.paths.models), max_image_pixels=cfg.data.max_image_pixels
            )
        return self.embedder


@dataclass(frozen=True)
class StageSpec:
    """A stage's name, how many candidates it keeps, how to open it over an index build (with
    the models loaded so far), and what its score means (the results page says it)."""

    name: str
    size: Callable[[FunnelConfig], int]
    open: Callable[[MarsConfig, IndexSnapshot, LoadedModels], Stage]
    score: str = ""
    index_part: str | None = None  # the part of an index build it reads, named when damaged


_REGISTRY: dict[str, StageSpec] = {}


def register_stage(spec: StageSpec) -> StageSpec:
    """Add a stage; registration order is the order stages run in. A name is registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"funnel stage {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def known_stages() -> list[str]:
    """Registered stage names, in the order the funnel runs them."""
    return list(_REGISTRY)


def stage_specs() -> list[StageSpec]:
    """The registered stages, in the order the funnel runs them."""
    return list(_REGISTRY.values())


def check_stages(names: list[str], key: str = "funnel.stages") -> list[str]:
    """Reject unknown, repeated or out-of-order names, or a list not starting with stage 1.

    Raises `ConfigError` with one line that names `key` and lists the known stages.
    """
    known = known_stages()
    listed = f"[{', '.join(names)}]"
    unknown = [name for name in names if name not in _REGISTRY]
    if unknown:
        raise ConfigError(
            f"{key}: unknown stage {unknown[0]!r} in {listed}; known stages: {', '.join(known)}"
        )
    if not names or names[0] != known[0]:
        raise ConfigError(f"{key} {listed} must start with {known[0]!r}: it picks the candidates")
    if len(set(names)) != len(names) or names != sorted(names, key=known.index):
        raise ConfigError(f"{key} {listed}: list each stage once, in the order {', '.join(known)}")
    return names


def check_config_stages(cfg: MarsConfig) -> MarsConfig:
    """Every stage list of the config (the funnel's and each ablation's) names known stages."""
    check_stages(cfg.funnel.stages)
    for index, ablation in enumerate(cfg.eval.ablations):
        check_stages(ablation, key=f"eval.ablations[{index}]")
    return cfg


def build_funnel(
    cfg: MarsConfig, stages: list[str] | None = None, *, models: LoadedModels | None = None
) -> SearchFunnel:
    """The funnel of `stages` (default `cfg.funnel.stages`) over the current index build,
    with `models` loaded before (default: load them).

    A registered stage that is not listed still cuts the list to its size, so the next stage
    gets as many candidates with or without it and an ablation compares orderings only.
    """
    from mars_core.index.verify import check_openable

    names = check_stages(list(stages if stages is not None else cfg.funnel.stages))
    snapshot = IndexSnapshot.current(cfg.index.dir)
    check_openable(snapshot, digest=cfg.index.verify_on_open)
    models = models or LoadedModels()
    steps = [
        FunnelStep(open_stage(spec, cfg, snapshot, models) if spec.name in names else None,
                   spec.size(cfg.funnel))
        for spec in _REGISTRY.values()
    ]  # fmt: skip
    return funnel_of(cfg, steps)


def funnel_of(cfg: MarsConfig, steps: list[FunnelStep]) -> SearchFunnel:
    """The funnel of opened `steps`. The agent presents its fits at its own bar: under
    `funnel.order=auto` the serving student version's chosen `min_fit_score`
    (`agent/ordering.py`), which what fits instead is judged at too."""
    stages = {step.stage.name: step.stage for step in steps if step.stage is not None}
    agent = stages.get(AGENT)
    ordering = getattr(agent.stage if isinstance(agent, WrappedStage) else agent, "ordering", None)
    sizes = cfg.funnel
    if ordering is not None:
        sizes = dataclasses.replace(sizes, min_fit_score=ordering.min_fit_score)
    return SearchFunnel(
        steps,
        final_k=sizes.k3,
        beyond=beyond_the_query(stages, sizes, cfg.index.vocabulary),
        room_search_needs=(SIGLIP, AGENT),
    )


def beyond_the_query(
    stages: dict[str, Stage], sizes: FunnelConfig, vocabulary: VocabularyConfig
) -> BeyondTheQuery | None:
    """Alternatives and room-only search over the funnel's own stage 2 and agent (seen
    through a service's lock, when it wraps stage 2 in one); None when either is switched off:
    nothing then judges a category the query did not name."""
    visual, agent = stages.get(SIGLIP), stages.get(AGENT)
    if visual is None or agent is None:
        return None
    lock = getattr(visual, "lock", None) or nullcontext()
    visual = visual.stage if isinstance(visual, WrappedStage) else visual
    return BeyondTheQuery(visual, agent, sizes, vocabulary, lock)


def open_stage(
    spec: StageSpec, cfg: MarsConfig, snapshot: IndexSnapshot, models: LoadedModels
) -> Stage:
    """Open one stage; a build part that passed the quick checks but cannot be read (garbage
    in its files) is named, with the repair command, instead of a library's traceback."""
    from mars_core.index.verify import damaged_part_error

    try:
        return spec.open(cfg, snapshot, models)
    except UserInputError:
        raise
    except Exception as e:  # Lucene and LanceDB fail on damage in many ways
        if spec.index_part is None:
            raise
        raise damaged_part_error(snapshot, spec.index_part, e) from e


def agent_notice(cfg: MarsConfig) -> str | None:
    """What a results page must say up front when the agent's scores mean nothing yet."""
    adapter = serving_adapter(cfg.student.adapter, cfg.student.registry)
    local = cfg.student.kind == "local"  # a served student is whatever the server holds
    untrained = local and cfg.student.tiny is not None and adapter is None
    return UNTRAINED_NOTICE if AGENT in cfg.funnel.stages and untrained else None


def _open_bm25(cfg: MarsConfig, snapshot: IndexSnapshot, _: LoadedModels) -> Stage:
    from mars_core.search.lexical import LexicalStage

    return LexicalStage.open(snapshot, cfg.index, name=BM25)


def _open_siglip(cfg: MarsConfig, snapshot: IndexSnapshot, models: LoadedModels) -> Stage:
    from mars_core.search.visual import VisualStage

    embedder = models.embedder_for(cfg)
    return VisualStage.open(
        snapshot, cfg.index, embedder, name=SIGLIP, text_weight=cfg.funnel.text_weight
    )


def open_agent(cfg: MarsConfig) -> AgentStage:
    """The agent stage of the configured student, as the funnel opens it (a service opens it
    again for each student it swaps in); its ordering blends stage 2's similarity."""
    from mars_core.agent.stage import AgentStage

    return AgentStage.from_config(cfg, name=AGENT, similarity=SIGLIP)


BM25 = register_stage(
    StageSpec(
        "bm25",
        lambda funnel: funnel.k1,
        _open_bm25,
        score="how well the query's words match the product text (unbounded, higher is better)",
        index_part="the Lucene build",
    )
).name
SIGLIP = register_stage(
    StageSpec(
        "siglip",
        lambda funnel: funnel.k2,
        _open_siglip,
        score="how alike the room photo and the product image look (cosine similarity, -1..1)",
        index_part="the LanceDB table",
    )
).name
AGENT = register_stage(
    StageSpec(
        "agent",
        lambda funnel: funnel.k3,
        lambda cfg, snapshot, _models: open_agent(cfg),
        score=(
            "the student model's judgement of how well the product fits this room, from 0 "
            "(does not belong here) to 1 (fits well); when even the best is under "
            "funnel.min_fit_score the page says nothing fits"
        ),
    )
).name
