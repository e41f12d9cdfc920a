"""Stage 3 of the funnel: the agent ranks the survivors and explains the top few."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mars_core.agent.ordering import Ordering, resolve_ordering
from mars_core.agent.remote import RemoteAgentScorer
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import ProductView, Scorer
from mars_core.agent.visual_cache import VISUAL_TOKENS_DIR
from mars_core.config import FunnelConfig, MarsConfig, StudentConfig
from mars_core.infra.errors import UserInputError
from mars_core.infra.registry import describe_registered, registry_version
from mars_core.infra.skipped import Skipped
from mars_core.prompt import PROMPT_VERSION, product_text
from mars_core.search.types import Candidate, SearchRequest, StageOutput, presented
from mars_core.vision.images import load_image


@dataclass(kw_only=True)
class AgentStage:
    """Fast-scores every candidate, sorts, keeps `k`, generates rationales for the top N and
    presents its fits: the candidates it scores at or over its fit bar, or, when none is, all
    of them as the closest options (`StageOutput.nothing_fits`).

    A candidate whose product image cannot be loaded is left out of the ranking and listed
    in the output's `skipped` with the reason, never silently dropped. A rationale the model
    writes as malformed JSON leaves `rationale=None` and is counted in
    `details["malformed_rationales"]`. Its name and the stage whose similarity its ordering
    blends come from the stage registry (`mars_core.funnel.stages`).
    """

    name: str  # its scores' key
    similarity: str | None = None  # the earlier stage whose score `ordering` blends with
    scorer: Scorer  # student.kind: local or openai
    rationale_top_n: int  # funnel.rationale_top_n
    max_image_pixels: int  # data.max_image_pixels
    # funnel.order's default (auto, with no version: the agent's score)
    ordering: Ordering = field(default_factory=lambda: resolve_ordering(FunnelConfig(), None))
    batcher: Scorer | None = None  # set by a service: the scorer as concurrent requests use it
    student: str = ""  # which student and adapter version rank: said with every result

    @classmethod
    def from_config(cls, cfg: MarsConfig, *, name: str, similarity: str | None) -> AgentStage:
        """The agent of the configured student (and adapter) with the funnel's sizes;
        `student.adapter=auto` serves the registry's champion when there is one."""
        scorer = open_scorer(
            cfg.student, Path(cfg.paths.models), Path(cfg.index.dir) / VISUAL_TOKENS_DIR
        )
        ordering = resolve_ordering(cfg.funnel, registry_version(scorer.adapter))
        return cls(
            name=name,
            similarity=similarity,
            student=f"{cfg.student.name} student, {describe_registered(scorer.adapter)}",
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
        shown, nothing_fits = presented(
            [candidate for candidate, _ in ranked],
            [candidate.scores[self.name] for candidate, _ in ranked],
            self.ordering.min_fit_score,
        )
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
            candidates=shown,
            skipped=skipped,
            details=details,
            ranked_by=f"{self.student}; {self.ordering.describe()}",
            nothing_fits=nothing_fits,
        )

    def judge(self, room: Image.Image, asks: list[tuple[str, list[Candidate]]]) -> list[Skipped]:
        """Score the candidates of several queries on one room (a category each, asked by its
        words) in one batched pass where the scorer merges queries (`score_many`); each
        candidate gets its score under the stage's name. Candidates whose image cannot be
        loaded are left unscored and returned, with the reason."""
        loaded = [(query, *self._load_products(candidates)) for query, candidates in asks]
        jobs = [(room, query, views) for query, views, _, _ in loaded]
        many = getattr(self._runner(), "score_many", None) if len(jobs) > 1 else None
        scores = many(jobs) if many else [self._runner().score(*job) for job in jobs]
        for (_, _, kept, _), job_scores in zip(loaded, scores, strict=True):
            for candidate, score in zip(kept, job_scores, strict=True):
                candidate.scores[self.name] = score
        return [skipped for *_, missed in loaded for skipped in missed]

    def explain(self, room: Image.Image, asks: list[tuple[str, list[Candidate]]]) -> int:
        """Rationales for scored candidates of several queries on one room, decoded in merged
        batches where the scorer merges queries (`generate_many`); returns how many came back
        malformed. With `funnel.rationale_top_n` = 0 nothing is explained, here either."""
        if not self.rationale_top_n:
            return 0
        loaded = [(query, *self._load_products(candidates)) for query, candidates in asks]
        return self._explain_views(
            room, [(query, list(zip(kept, views, strict=True))) for query, views, kept, _ in loaded]
        )

    def batch_across_requests(self, window_s: float) -> None:
        """From now on score and explain through the scorer as a service whose requests
        arrive concurrently uses it (`Scorer.for_concurrent_requests`: the in-process model
        behind a queue that merges them; a served student as it is, its server batches
        them); `close` stops it."""
        self.batcher = self.scorer.for_concurrent_requests(window_s)

    def close(self) -> None:
        """Stop the batcher and release what the scorer holds (a served agent's
        connections, the kept KV caches)."""
        if self.batcher is not None and self.batcher is not self.scorer:
            self.batcher.close()
        self.batcher = None
        self.scorer.close()

    def _runner(self) -> Scorer:
        return self.batcher or self.scorer

    def _final_order(self, kept: list[Candidate]) -> dict[str, float]:
        """The ordering's sort key per candidate, from the agent's score and the `similarity`
        stage's (when it ran)."""
        agent = {c.key: c.scores[self.name] for c in kept}
        visual = {c.key: c.scores[self.similarity] for c in kept if self.similarity in c.scores}
        return self.ordering.final(agent, visual)

    def _load_products(
        self, candidates: list[Candidate]
    ) -> tuple[list[ProductView], list[Candidate], list[Skipped]]:
        views, kept, skipped = [], [], []
        for candidate in candidates:
            try:
                image = load_image(candidate.product["image_path"], self.max_image_pixels)
            except UserInputError as e:
                skipped.append(Skipped.because(candidate.key, e))
                continue
            views.append(ProductView(image=image, text=product_text(candidate.product)))
            kept.append(candidate)
        return views, kept, skipped

    def _attach_rationales(
        self, request: SearchRequest, top: list[tuple[Candidate, ProductView]]
    ) -> int:
        """Generate the top N's rationales after their known scores; return how many came
        back malformed."""
        return self._explain_views(request.room, [(request.query, top)])

    def _explain_views(
        self, room: Image.Image, asks: list[tuple[str, list[tuple[Candidate, ProductView]]]]
    ) -> int:
        """Each query's candidates' rationales, opened with their known scores."""
        asks = [(query, pairs) for query, pairs in asks if pairs]
        if not asks:
            return 0
        runner = self._runner()
        jobs = [(room, query, [view for _, view in pairs]) for query, pairs in asks]
        known = [[candidate.scores[self.name] for candidate, _ in pairs] for _, pairs in asks]
        many = getattr(runner, "generate_many", None) if len(jobs) > 1 else None
        if many is not None:
            answers = many(jobs, runner.max_new_tokens, scores=known)
        else:
            answers = [runner.generate(*job, scores=s) for job, s in zip(jobs, known, strict=True)]
        malformed = 0
        for (_, pairs), generated in zip(asks, answers, strict=True):
            for (candidate, _), answer in zip(pairs, generated, strict=True):
                candidate.rationale = answer.answer.rationale if answer.answer else None
                malformed += answer.answer is None
        return malformed


def open_scorer(cfg: StudentConfig, cache_dir: Path, visual_tokens: Path | None = None) -> Scorer:
    """The agent's scorer for `student.kind`: the model in this process (reading product
    visual tokens from `visual_tokens` with `student.visual_cache`), or a served one."""
    if cfg.kind == "openai":
        return RemoteAgentScorer(cfg)
    return AgentScorer.from_config(cfg, cache_dir, visual_tokens=visual_tokens)
