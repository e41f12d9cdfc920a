"""The agent: a Qwen2-VL student (plus optional LoRA adapter) that scores room/product pairs.

Two ways to get a score:

* `score` (the fast path, used for ranking): one forward pass per candidate, no generation.
  The prompt ends with the forced answer opening `{"score": 0.` and the score is the expected
  value of the one-decimal score the model would write, read from the next-token
  distributions at two positions of that same pass (`expected_score.py`, shared with the
  served agent): the first digit's after `{"score": `, the tenths' after `{"score": 0.`.
  Teacher-forcing the `0` costs nothing extra: causal attention never shows the forced token
  to the earlier position.
* `generate`: the answer JSON, greedy and bounded by `max_new_tokens`; the agent runs it only
  for the top N results to get their rationales.

With `reuse_room_prefix`, what a query's candidates share (system text, room image, query,
instruction) is encoded once and kept (`room_prefix.py`), candidates run in batches on its KV
cache, and answers continue their candidates' scoring passes (`kv_batch.py`); without it,
every prompt is whole.

Per candidate, the model sees its product image (bounded by `product_max_pixels`, far below a
room's bound, `vision.py`) and its text. With a `VisualCache` the product image's visual
tokens come from the index build instead of the vision tower (the tower is frozen in SFT).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mars_core.agent.adapter import apply_adapter, is_whole_model, resolve_adapter, serving_adapter
from mars_core.agent.batching import AgentBatcher
from mars_core.agent.expected_score import expected_scores, score_token_ids
from mars_core.agent.kv_batch import PrefixBatch, answer_batches, score_positions
from mars_core.agent.room_prefix import RoomPrefixes, Row, inner_model
from mars_core.agent.types import SCORE_PROBE, GeneratedAnswer, Job, ProductView, Scorer
from mars_core.agent.vision import bound_product_image, vision_fingerprint, vision_inputs
from mars_core.agent.visual_cache import VisualCache
from mars_core.config import StudentConfig
from mars_core.infra.batching import batched
from mars_core.models.loading import load_vlm
from mars_core.prompt import answer_openings, prompt_messages, try_parse_answer


class AgentScorer:
    """Scores (room, query, product) triples with a Qwen2-VL model in this process."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        batch_size: int,
        max_new_tokens: int,
        reuse_room_prefix: bool,
        adapter: str | None = None,
        product_max_pixels: int | None = None,
        visual_cache: VisualCache | None = None,
    ) -> None:
        """Wrap a loaded model; the knobs are `student.*` (see `from_config`).

        `product_max_pixels` None leaves product images at the processor's (room) bound;
        `visual_cache` None runs the vision tower on every product image.
        """
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.reuse_room_prefix = reuse_room_prefix
        self.adapter = adapter  # the trained weights on the base (folder or model URI), if any
        self.product_max_pixels = product_max_pixels
        self.visual_cache = visual_cache
        self.device = next(model.parameters()).device
        self._first_digit_ids, self._digit_ids = score_token_ids(processor.tokenizer)
        self._fingerprint: str | None = None
        # Encoded room prefixes of the latest queries: at most one batch's worth of rooms.
        self._prefixes = RoomPrefixes(keep=batch_size)

    @classmethod
    def from_config(
        cls, cfg: StudentConfig, cache_dir: Path, *, visual_tokens: Path | None = None
    ) -> AgentScorer:
        """Load the student (and its adapter, if configured) the one way models are loaded;
        `adapter=auto` is the registry's champion (`student.registry`) when there is one.
        With `student.visual_cache`, product visual tokens are read from `visual_tokens`
        (the index's folder of them), when given."""
        adapter = serving_adapter(cfg.adapter, cfg.registry)
        folder = resolve_adapter(adapter) if adapter else None
        whole = folder is not None and is_whole_model(folder)
        loaded = load_vlm(cfg, cache_dir, source=str(folder) if whole else None)
        model = loaded.model
        if folder is not None and not whole:
            model = apply_adapter(model, str(folder), merge=not cfg.load_in_4bit)
        scorer = cls(
            model,
            loaded.processor,
            batch_size=cfg.batch_size,
            max_new_tokens=cfg.max_new_tokens,
            reuse_room_prefix=cfg.reuse_room_prefix,
            adapter=adapter,
            product_max_pixels=cfg.product_max_pixels,
        )
        if visual_tokens is not None and cfg.visual_cache:
            scorer.visual_cache = VisualCache.load(visual_tokens, scorer.vision_fingerprint)
        return scorer

    def for_concurrent_requests(self, window_s: float) -> Scorer:
        """This model behind a queue (`batching.AgentBatcher`): the candidates of requests
        that arrive within `window_s` share forward passes."""
        return AgentBatcher(self, window_s)

    def close(self) -> None:
        """Drop the kept room prefixes and scoring passes (the model goes with the scorer)."""
        self.forget_room()

    # ---- product images -----------------------------------------------------------------------

    @property
    def vision_fingerprint(self) -> str:
        """Which cached visual tokens this scorer may read (see `visual_cache`)."""
        if self._fingerprint is None:
            core = inner_model(self.model)
            self._fingerprint = vision_fingerprint(
                core.visual,
                core.config.vision_config,
                self.processor.image_processor,
                self.product_max_pixels,
            )
        return self._fingerprint

    def bound_product_image(self, image: Image.Image) -> Image.Image:
        """The product image as this scorer shows it (see `vision.bound_product_image`)."""
        return bound_product_image(image, self.processor.image_processor, self.product_max_pixels)

    def encode_images(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """The vision tower's (merger's) output per image: one (tokens, hidden) tensor each."""
        inputs = self.processor.image_processor(images=images, return_tensors="pt")
        grid = inputs["image_grid_thw"].to(self.device)
        return self._tower(inputs["pixel_values"].to(self.device), grid)

    def _tower(self, pixel_values: torch.Tensor, grid: torch.Tensor) -> list[torch.Tensor]:
        out = inner_model(self.model).get_image_features(pixel_values, grid, return_dict=True)
        return list(out.pooler_output)

    def vision_inputs(
        self, inputs: dict[str, torch.Tensor], images: list[Image.Image]
    ) -> dict[str, Any]:
        """What the model needs for `images` (see `vision.vision_inputs`)."""
        return vision_inputs(inputs, images, self.visual_cache, self._tower, self.device)

    def bounded(self, products: Sequence[ProductView]) -> list[ProductView]:
        """The products with their images as this scorer shows them."""
        return [ProductView(self.bound_product_image(p.image), p.text) for p in products]

    def forget_room(self) -> None:
        """Drop the kept room prefixes (benches time each path from a cold prefix)."""
        self._prefixes.clear()

    def forget_scored(self) -> None:
        """Drop the kept scoring passes, not the prefixes (benches time answers that run
        their candidates' prompts again)."""
        self._prefixes.forget_scored()

    # ---- fast score -------------------------------------------------------------------------

    @torch.inference_mode()
    def score(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        reuse_room_prefix: bool | None = None,
    ) -> list[float]:
        """Fast scores in [0, 1], one per product, from one forward pass each (no generation)."""
        if not products:
            return []
        reuse = self.reuse_room_prefix if reuse_room_prefix is None else reuse_room_prefix
        if reuse:
            return self.score_many([(room, query, products)])[0]
        products = self.bounded(products)
        texts = [self.prompt_text(query, p.text) + SCORE_PROBE for p in products]
        scores: list[float] = []
        for chunk in batched(list(zip(texts, products, strict=True)), self.batch_size):
            scores += self._read_scores(self._forward_full(room, chunk))
        return scores

    @torch.inference_mode()
    def score_many(self, jobs: Sequence[Job]) -> list[list[float]]:
        """Fast scores of several queries' candidates (each on its own room prefix), merged
        into batches of `batch_size` whatever query they belong to: concurrent users share
        forward passes. One list of scores per job, in its products' order."""
        rows = self._rows(jobs, [[SCORE_PROBE] * len(products) for _, _, products in jobs])
        for row in rows:
            row.prefix.scored.clear()  # only the latest scores' rows are kept for answers
        scores: list[list[float]] = [[] for _ in jobs]
        for chunk in batched(rows, self.batch_size):
            batch = PrefixBatch.build(self, chunk, padding_side="right")
            for row, score in zip(chunk, self._read_scores(batch.score_logits(self)), strict=True):
                scores[row.job].append(score)
        return scores

    def _rows(self, jobs: Sequence[Job], suffixes: Sequence[Sequence[str]]) -> list[Row]:
        """Every candidate of every job, its prompt text ending with its suffix (what the
        answer opens with), on its job's room prefix (the missing ones encoded together)."""
        asked = []
        for job, ((room, query, products), ends) in enumerate(zip(jobs, suffixes, strict=True)):
            products = self.bounded(products)
            texts = [
                self.prompt_text(query, p.text) + end for p, end in zip(products, ends, strict=True)
            ]
            if texts:
                asked.append((job, room, texts, products, ends))
        prefixes = self._prefixes.get(self, [(room, texts[0]) for _, room, texts, _, _ in asked])
        return [
            Row(job, prefix, t, p, end)
            for (job, _, texts, products, ends), prefix in zip(asked, prefixes, strict=True)
            for t, p, end in zip(texts, products, ends, strict=True)
        ]

    def _forward_full(
        self, room: Image.Image, chunk: list[tuple[str, ProductView]]
    ) -> torch.Tensor:
        """Logits at the two score positions of whole prompts (no cache)."""
        texts = [text for text, _ in chunk]
        images = [[room, product.image] for _, product in chunk]
        inputs = self.process(texts, images, padding_side="right")
        out = self.model(**inputs, use_cache=False, logits_to_keep=score_positions(inputs))
        return out.logits

    def _read_scores(self, logits: torch.Tensor) -> list[float]:
        """Expected one-decimal score from logits at (first-digit, tenths) positions."""
        first = logits[:, 0, self._first_digit_ids]  # "0", "1"
        return expected_scores(first, logits[:, 1, self._digit_ids]).tolist()

    # ---- generation -------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        room: Image.Image,
        query: str,
        products: Sequence[ProductView],
        *,
        scores: Sequence[float] | None = None,
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
        reuse_room_prefix: bool | None = None,
    ) -> list[GeneratedAnswer]:
        """Greedy answer JSON per product, in batches of `batch_size`.

        With `scores` (the products' fast scores) each answer opens with its score written
        out (`answer_opening`) and the model writes only the rationale: the agent already
        has the score, and decoding its digits and the JSON around them again would cost
        decode steps that tell nothing new. `max_new_tokens` counts the generated tokens.
        On the room prefix (default with `reuse_room_prefix`), the batch decodes on the
        query's shared KV cache, and an opened answer of a candidate the latest `score` of
        this query scored continues that scoring pass; otherwise each prompt is whole (HF
        `generate`, left-padded).
        """
        if not products:
            return []
        reuse = self.reuse_room_prefix if reuse_room_prefix is None else reuse_room_prefix
        budget = max_new_tokens or self.max_new_tokens
        if reuse:
            job = (room, query, products)
            return self.generate_many([job], budget, min_new_tokens, [scores])[0]
        products = self.bounded(products)
        openings = answer_openings(scores, len(products))
        answers: list[GeneratedAnswer] = []
        for chunk in batched(list(zip(products, openings, strict=True)), self.batch_size):
            texts = [self.prompt_text(query, p.text) + opening for p, opening in chunk]
            views = [p for p, _ in chunk]
            new_tokens = self._generate_full(room, texts, views, budget, min_new_tokens)
            answers += self._answers(new_tokens, [opening for _, opening in chunk])
        return answers

    @torch.inference_mode()
    def generate_many(
        self,
        jobs: Sequence[Job],
        max_new_tokens: int,
        min_new_tokens: int = 0,
        scores: Sequence[Sequence[float] | None] | None = None,
    ) -> list[list[GeneratedAnswer]]:
        """Greedy answers of several queries' products, each on its room prefix, decoded in
        merged batches of `batch_size`; one list per job, in its products' order. `scores`
        (per job, or None) opens answers with known scores, as in `generate`."""
        scores = scores or [None] * len(jobs)
        openings = [
            answer_openings(known, len(products))
            for known, (_, _, products) in zip(scores, jobs, strict=True)
        ]
        rows = self._rows(jobs, openings)
        decoded: dict[int, GeneratedAnswer] = {}
        for chunk, batch in answer_batches(self, rows, self.batch_size):
            new_tokens = batch.generate(self, max_new_tokens, min_new_tokens)
            openings = [row.suffix for row in batch.rows]
            decoded |= dict(zip(chunk, self._answers(new_tokens, openings), strict=True))
        answers: list[list[GeneratedAnswer]] = [[] for _ in jobs]
        for i, row in enumerate(rows):
            answers[row.job].append(decoded[i])
        return answers

    def _answers(self, new_tokens: torch.Tensor, openings: list[str]) -> list[GeneratedAnswer]:
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [
            GeneratedAnswer(text=opening + text, answer=try_parse_answer(opening + text))
            for opening, text in zip(openings, texts, strict=True)
        ]

    def _generate_full(
        self,
        room: Image.Image,
        texts: list[str],
        chunk: list[ProductView],
        max_new_tokens: int,
        min_new_tokens: int,
    ) -> torch.Tensor:
        """New tokens of whole prompts through HF `generate` (the MARS-style baseline)."""
        inputs = self.process(texts, [[room, p.image] for p in chunk], padding_side="left")
        out = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
        )
        return out[:, inputs["input_ids"].shape[1] :]

    # ---- prompts ----------------------------------------------------------------------------

    def prompt_text(self, query: str, product_text: str) -> str:
        """The chat-templated prompt of one candidate, up to where the answer starts."""
        return self.processor.apply_chat_template(
            prompt_messages(query, product_text), add_generation_prompt=True
        )

    def process(
        self, texts: list[str], images: list[list[Image.Image]], *, padding_side: str
    ) -> dict[str, torch.Tensor]:
        """Prompt texts and their images as model inputs on the model's device."""
        inputs = self.processor(
            text=texts, images=images, padding=True, padding_side=padding_side, return_tensors="pt"
        )
        return dict(inputs.to(self.device))
