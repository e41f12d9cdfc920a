"""The contract every funnel stage implements, and what flows between stages.

A stage takes the request and the previous stage's candidates and returns at most `k` of
them, best first, each carrying the scores of every stage it passed. Stage 1 (lexical) gets
`None` and ranks the whole catalogue. Because all stages share this shape, the funnel can
switch any of them off and an evaluation can ablate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from mars_core.infra.skipped import Skipped


@dataclass
class SearchRequest:
    """What a user asks: a room photo and a short query."""

    room: Image.Image
    query: str
    room_id: str = ""  # a name for logs and reports (file name or dataset id)


@dataclass
class Candidate:
    """A product on its way through the funnel."""

    key: str  # catalogue key, f"{item_id}@{domain}"
    product: dict[str, Any]  # the catalogue row (name, category, image_path, ...)
    scores: dict[str, float] = field(default_factory=dict)  # stage name -> score
    rationale: str | None = None
    # its document number in the index build stage 1 searched: stage 2 gathers its vector by it
    row: int | None = None


@dataclass(frozen=True)
class CategoryLock:
    """The category stage 1 kept the search to; `category=None` when the query named none
    and every category was searched (`reason` says why, for the user)."""

    category: str | None
    reason: str = ""

    @property
    def locked(self) -> bool:
        return self.category is not None


@dataclass
class StageOutput:
    """A stage's ranked candidates plus what the result must say about the run.

    `lock`, `skipped`, `ranked_by` and `nothing_fits` are read by the report, the results
    table and the CLI; `details` are the stage's own diagnostics (sizes, timings, modes) for
    logs and tests.
    """

    candidates: list[Candidate]
    lock: CategoryLock | None = None  # set by the stage that picks the category
    skipped: list[Skipped] = field(default_factory=list)  # candidates it could not judge
    details: dict[str, Any] = field(default_factory=dict)
    ranked_by: str | None = None  # the model behind a learned ranking (student + adapter)
    # set by a stage that judges fit (the agent, `presented`): none of its candidates fits,
    # so they are the closest options, not matches
    nothing_fits: bool = False


class Stage(Protocol):
    """One funnel stage."""

    name: str

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput: ...


def close_stage(stage: Stage) -> None:
    """Release what a stage holds open, for the stages that hold anything (a `close`)."""
    close = getattr(stage, "close", None)
    if close is not None:
        close()


@dataclass
class WrappedStage:
    """A stage seen through a wrapper that changes how it ranks (a subclass's `rank`) but not
    its name or what it holds open."""

    stage: Stage

    @property
    def name(self) -> str:
        return self.stage.name

    def close(self) -> None:
        close_stage(self.stage)


def presented(
    ranked: list[Candidate], fit_scores: list[float], min_fit_score: float
) -> tuple[list[Candidate], bool]:
    """What a fit judge's list shows, and whether nothing fits: the candidates scored at or over
    `min_fit_score` (a misfit is never presented as a match), or, when none is, all of them as
    the closest options under "nothing fits". Without results, no claim is made."""
    fits = [c for c, score in zip(ranked, fit_scores, strict=True) if score >= min_fit_score]
    if fits or not ranked:
        return fits, False
    return ranked, True
