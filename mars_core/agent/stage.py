"""Stage 3 of the funnel: the agent ranks the survivors and explains the top few."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mars_core.agent.adapter import describe_adapter, registry_version
from mars_core.agent.batching import AgentBatcher
from mars_core.agent.ordering import AGENT, Ordering, resolve_ordering
from mars_core.agent.prompt import PROMPT_VERSION, product_text
from mars_core.agent.remote import RemoteAgentScorer, open_scorer
from mars_core.agent.scorer import AgentScorer, ProductView
from mars_core.agent.visual_cache import VISUAL_TOKENS_DIR, VisualCache
from mars_core.config import MarsConfig
from mars_core.errors import UserInputError
from mars_core.images import load_image
from mars_core.search.types import Candidate, SearchRequest, SkippedProduct, StageOutput


@dataclass(kw_only=True)
class AgentStage:
    """Fast-scores every candidate, sorts, keeps `k` and generates rationales for the top N.

    A candidate whose product image cannot be loaded is left out of the ranking and listed
    in the output's `skipped` with the reason, never silently dropped. A rationale the model
    writes as malformed JSON leaves `rationale=None` and is counted in
    `details["malformed_rationales"]`.
    """

    scorer: AgentScorer | RemoteAgentScorer  # student.kind: local or openai
    rationale_top_n: int  # funnel.rationale_top_n
    max_image_pixels: int  # data.max_image_pixels
    ordering: Ordering = field(default_factory=lambda: Ordering(AGENT, 0.0, 0.5))
    batcher: AgentBatcher | None = None  # set by a service: merges concurrent requests
    student: str = ""  # which student and adapter version rank: said with every result
    name: str = field(default="agent", init=False)

    @classmethod
    def from_config(cls, cfg: MarsConfig, cache_dir: Path | None = None) -> AgentStage:
        """The agent of the configured student (and adapter) with the funnel's sizes;
        `student.adapter=auto` serves the registry's champion when there is one."""
        scorer = open_scorer(cfg.student, Path(cache_dir or cfg.paths.models))
        if isinstance(scorer, AgentScorer) and cfg.student.visual_cache:
            folder = Path(cfg.index.dir) / VISUAL_TOKENS_DIR
            scorer.visual_cache = VisualCache.load(folder, scorer.vision_fingerprint)
        ordering = resolve_ordering(cfg.funnel, registry_version(scorer.adapter))
        return cls(
            student=f"{cfg.student.name} student, {describe_adapter(scorer.adapter)}",
            scorer=scorer,
            rationale_top_n=cfg.funnel.rationale_top_n,
            max_image_pixels=cfg.data.max_image_pixels,
            ordering=ordering,
        )

    def rank(
        self, request: SearchRequest, candidates: list[Candidate] | None, k: int
    ) -> StageOutput:
        if candidates is None:
            raise ValueError("the agent stage re-ranks an earlier stage's candidates; got None")
        started = time.perf_counter()
        views, kept, skipped = self._load_products(candidates)
        scores = self._runner().score(request.room, request.query, views)
        for candidate, score in zip(kept, scores, strict=True):
            candidate.scores[self.name] = score
        order = self._final_order(kept)
        ranked = sorted(
            zip(kept, views, strict=True), key=lambda pair: order[pair[0].key], reverse=True
        )[:k]
        scored = time.perf_counter()
        malformed = self._attach_rationales(request, ranked[: self.rationale_top_n])
        best = ranked[0][0].scores[self.name] if ranked else 0.0
        details = {
            "prompt_version": PROMPT_VERSION,
            "scored": len(kept),
            "rationales": min(self.rationale_top_n, len(ranked)),
            "malformed_rationales": malformed,
            "best_score": best,
            "score_seconds": scored - started,
            "rationale_seconds": time.perf_counter() - scored,
        }
        return StageOutput(
            candidates=[candidate for candidate, _ in ranked],
            skipped=skipped,
            details=details,
            ranked_by=f"{self.student}; {self.ordering.describe()}",
        )

    def batch_across_requests(self, window_s: float) -> None:
        """From now on score and explain through an `AgentBatcher` (for a service whose
        requests arrive concurrently); `close` stops it. A served student is left as it is:
        its server batches concurrent requests itself."""
        if isinstance(self.scorer, AgentScorer):
            self.batcher = AgentBatcher(self.scorer, window_s)

    def close(self) -> None:
        """Stop the batcher and release the served agent's connections."""
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        if isinstance(self.scorer, RemoteAgentScorer):
            self.scorer.close()

    def _runner(self) -> AgentScorer | RemoteAgentScorer | AgentBatcher:
        return self.batcher or self.scorer

    def _final_order(self, kept: list[Candidate]) -> dict[str, float]:
        """The ordering's sort key per candidate, from the agent's and stage 2's scores."""
        agent = {c.key: c.scores[self.name] for c in kept}
        visual = {c.key: c.scores["siglip"] for c in kept if "siglip" in c.scores}
        return self.ordering.final(agent, visual)

    def _load_products(
        self, candidates: list[Candidate]
    ) -> tuple[list[ProductView], list[Candidate], list[SkippedProduct]]:
        views, kept, skipped = [], [], []
        for candidate in candidates:
            try:
                image = load_image(candidate.product["image_path"], self.max_image_pixels)
            except UserInputError as e:
                skipped.append(SkippedProduct(candidate.key, type(e).__name__, str(e)))
                continue
            views.append(ProductView(image=image, text=product_text(candidate.product)))
            kept.append(candidate)
        return views, kept, skipped

    def _attach_rationales(
        self, request: SearchRequest, top: list[tuple[Candidate, ProductView]]
    ) -> int:
        """Generate the top N's rationales after their known scores; return how many came
        back malformed."""
        if not top:
            return 0
        answers = self._runner().generate(
            request.room,
            request.query,
            [view for _, view in top],
            scores=[candidate.scores[self.name] for candidate, _ in top],
        )
        for (candidate, _), generated in zip(top, answers, strict=True):
            candidate.rationale = generated.answer.rationale if generated.answer else None
        return sum(generated.answer is None for generated in answers)
