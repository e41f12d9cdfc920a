"""The agent: a Qwen2-VL student (plus optional LoRA adapter) that scores room/product pairs.

Two ways to get a score:

* `score` (the fast path, used for ranking): one forward pass per candidate, no generation.
  The prompt ends with the forced answer opening `{"score": 0.` and the score is read from the
  next-token distributions at two positions of that same pass
  (`mars_core.agent.expected_score`, shared with the served agent):

  - after `{"score": ` the model picks the first digit; only `0` and `1` are valid there
    (renormalised over those two), giving p(1);
  - after `{"score": 0.` it picks the tenths digit; the expectation over `0`..`9`
    (renormalised) gives E[tenths | "0."].

  score = p(1) * 1.0 + p(0) * E[tenths | "0."] / 10, which is the expected value of the
  score the model would write in the one-decimal answer format (`1.` can only continue with
  `0`). Teacher-forcing the `0` costs nothing extra: the first-digit distribution is read at
  an earlier position of the same pass (causal attention never sees the forced token there).

* `generate`: the answer JSON, greedy and bounded by `max_new_tokens`; the agent runs it only
  for the top N results to get their rationales.

The room image, query and instruction are the same for every candidate of a query and come
first in the prompt, so system text + room image + query + instruction is one prefix (the
"room prefix"): with `reuse_room_prefix` it is encoded once and its
KV cache is expanded along the batch for every batch of candidates. Qwen2-VL's M-RoPE positions
depend on image grids, so the positions of the whole sequence come from `get_rope_index` on
prefix + continuation and are sliced; continuations are right-padded and the logits are read
at each row's own last positions (`logits_to_keep` with per-row indices). The last query's
prefix is kept, so the top-N answers that follow the scores reuse it too: they decode as one
batch on the shared prefix (continuations left-padded, a greedy loop over the cache). The
scoring pass also keeps each candidate's own part of the KV cache (product image, text and
`{"score": 0.`), so an answer that opens with its known score continues that pass: only the
rest of its opening (`7, "rationale": "`) runs before the rationale is decoded.

Per candidate, the model sees its product image (bounded by `product_max_pixels`, far below a
room's bound) and its text. With a `VisualCache` the product image's visual tokens come from
the index build instead of the vision tower (the tower is frozen in SFT).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from transformers import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from mars_core.agent.adapter import apply_adapter, is_whole_model, resolve_adapter, serving_adapter
from mars_core.agent.expected_score import expected_scores
from mars_core.agent.prompt import (
    ANSWER_PREFIX,
    Answer,
    answer_opening,
    prompt_messages,
    try_parse_answer,
)
from mars_core.agent.visual_cache import VisualCache, image_digest, vision_fingerprint
from mars_core.config import StudentConfig
from mars_core.models.loading import load_vlm

# The fast path's forced answer opening; its last two tokens are the digit `0` and `.`.
SCORE_PROBE = ANSWER_PREFIX + "0."
# Opens each image in the prompt text; the last one opens the candidate's product image.
VISION_START = "<|vision_start|>"


@dataclass(frozen=True)
class ProductView:
    """A candidate as the agent sees it: its image and `prompt.product_text(row)`."""

    image: Image.Image
    text: str


# A KV cache as plain tensors: per layer (keys, values), each (batch, heads, tokens, dim).
KV = list[tuple[torch.Tensor, ...]]
# One query for `score_many` / `generate_many`: (room, query, products).
Job = tuple[Image.Image, str, Sequence["ProductView"]]


@dataclass(frozen=True)
class TokenBudget:
    """Tokens of one query (means over its candidates): see `AgentScorer.token_budget`."""

    room_prefix: int  # system text, room image, query and instruction, once per query
    product_image: float  # per candidate: the product's visual tokens
    product_text: float  # per candidate: product text, chat markers
    answer_prefix: int  # per candidate: the forced `{"score": 0.`
    answer: int  # per reason: new tokens generated at most (student.max_new_tokens)
    opening: int  # per reason: `{"score": 0.7, "rationale": "`, forced from the known score

    @property
    def per_candidate(self) -> float:
        return self.product_image + self.product_text + self.answer_prefix

    def per_reason(self) -> float:
        """A reason's tokens after its candidate's scoring pass: its answer past the answer
        prefix the pass already ran (the rest of the opening, then the decoded sentence)."""
        return self.answer - self.answer_prefix


@dataclass(frozen=True)
class GeneratedAnswer:
    """A generated answer: the raw text and its parse (None when malformed)."""

    text: str
    answer: Answer | None


class AgentScorer:
    """Scores (room, query, product) triples with a Qwen2-VL model."""

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
        self._first_digit_ids, self._digit_ids = _score_token_ids(processor.tokenizer)
        self._fingerprint: str | None = None
        # Encoded room prefixes of the latest queries (scores, then the answers of the same
        # query reuse them); at most one batch's worth of rooms is kept.
        self._prefixes: OrderedDict[tuple[str, str], _RoomPrefix] = OrderedDict()

    @classmethod
    def from_config(cls, cfg: StudentConfig, cache_dir: Path) -> AgentScorer:
        """Load the student (and its adapter, if configured) the one way models are loaded;
        `adapter=auto` is the registry's champion (`student.registry`) when there is one."""
        adapter = serving_adapter(cfg.adapter, cfg.registry)
        folder = resolve_adapter(adapter) if adapter else None
        whole = folder is not None and is_whole_model(folder)
        loaded = load_vlm(cfg, cache_dir, source=str(folder) if whole else None)
        model = loaded.model
        if folder is not None and not whole:
            model = apply_adapter(model, str(folder), merge=not cfg.load_in_4bit)
        return cls(
            model,
            loaded.processor,
            batch_size=cfg.batch_size,
            max_new_tokens=cfg.max_new_tokens,
            reuse_room_prefix=cfg.reuse_room_prefix,
            adapter=adapter,
            product_max_pixels=cfg.product_max_pixels,
        )

    # ---- product images -----------------------------------------------------------------------

    @property
    def vision_fingerprint(self) -> str:
        """Which cached visual tokens this scorer may read (see `visual_cache`)."""
        if self._fingerprint is None:
            core = _rope_core(self.model)
            image = self.processor.image_processor
            settings = {
                name: getattr(image, name, None)
                for name in (
                    "patch_size",
                    "merge_size",
                    "temporal_patch_size",
                    "image_mean",
                    "image_std",
                    "rescale_factor",
                    "resample",
                    "size",
                )
            }
            settings["product_max_pixels"] = self.product_max_pixels
            self._fingerprint = vision_fingerprint(core.visual, core.config.vision_config, settings)
        return self._fingerprint

    def bound_product_image(self, image: Image.Image) -> Image.Image:
        """The product image as this scorer shows it (see `bound_product_image`)."""
        return bound_product_image(image, self.processor.image_processor, self.product_max_pixels)

    def encode_images(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """The vision tower's (merger's) output per image: one (tokens, hidden) tensor each."""
        inputs = self.processor.image_processor(images=images, return_tensors="pt")
        grid = inputs["image_grid_thw"].to(self.device)
        return self._tower(inputs["pixel_values"].to(self.device), grid)

    def _tower(self, pixel_values: torch.Tensor, grid: torch.Tensor) -> list[torch.Tensor]:
        out = _rope_core(self.model).get_image_features(pixel_values, grid, return_dict=True)
        return list(out.pooler_output)

    def _vision_inputs(
        self, inputs: dict[str, torch.Tensor], images: list[Image.Image]
    ) -> dict[str, Any]:
        """What the model needs for `images`: their pixels for the vision tower, or, with a
        visual cache, the cached tokens (the tower runs only on images the cache lacks)."""
        grid = inputs["image_grid_thw"]
        if self.visual_cache is None:
            return {"pixel_values": inputs["pixel_values"], "image_grid_thw": grid}
        cached = [self.visual_cache.get(image_digest(image)) for image in images]
        missing = [i for i, tensor in enumerate(cached) if tensor is None]
        if missing:
            pieces = inputs["pixel_values"].split(grid.prod(-1).tolist())
            computed = self._tower(torch.cat([pieces[i] for i in missing]), grid[missing])
            for i, tensor in zip(missing, computed, strict=True):
                cached[i] = tensor
        features = tuple(tensor.to(self.device) for tensor in cached)
        return {
            "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=features)},
            "image_grid_thw": grid,
        }

    def _bounded(self, products: Sequence[ProductView]) -> list[ProductView]:
        return [ProductView(self.bound_product_image(p.image), p.text) for p in products]

    def _room_prefix(self, room: Image.Image, full_text: str) -> _RoomPrefix:
        """The query's encoded room prefix: a kept one when room and text match (scores, then
        the top-N answers of one query), else a new one."""
        key = (image_digest(room), _prefix_text(full_text))
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = _RoomPrefix.encode(self, room, key[1])
            while len(self._prefixes) > self.batch_size:
                self._prefixes.popitem(last=False)
        self._prefixes.move_to_end(key)
        return prefix

    def forget_room(self) -> None:
        """Drop the kept room prefixes (benches time each path from a cold prefix)."""
        self._prefixes.clear()

    def forget_scored(self) -> None:
        """Drop the kept scoring passes, not the prefixes (benches time answers that run
        their candidates' prompts again)."""
        for prefix in self._prefixes.values():
            prefix.scored.clear()

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
        products = self._bounded(products)
        texts = [self._prompt_text(query, p.text) + SCORE_PROBE for p in products]
        scores: list[float] = []
        for chunk in chunks(list(zip(texts, products, strict=True)), self.batch_size):
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
        for chunk in chunks(rows, self.batch_size):
            batch = _Batch.build(self, chunk, padding_side="right")
            for row, score in zip(chunk, self._read_scores(batch.score_logits(self)), strict=True):
                scores[row.job].append(score)
        return scores

    def _rows(self, jobs: Sequence[Job], suffixes: Sequence[Sequence[str]]) -> list[_Row]:
        """Every candidate of every job, its prompt text ending with its suffix (what the
        answer opens with)."""
        rows = []
        for job, ((room, query, products), ends) in enumerate(zip(jobs, suffixes, strict=True)):
            products = self._bounded(products)
            texts = [
                self._prompt_text(query, p.text) + end
                for p, end in zip(products, ends, strict=True)
            ]
            if texts:
                prefix = self._room_prefix(room, texts[0])
                rows += [
                    _Row(job, prefix, t, p, end)
                    for t, p, end in zip(texts, products, ends, strict=True)
                ]
        return rows

    def _forward_full(
        self, room: Image.Image, chunk: list[tuple[str, ProductView]]
    ) -> torch.Tensor:
        """Logits at the two score positions of whole prompts (no cache)."""
        texts = [text for text, _ in chunk]
        images = [[room, product.image] for _, product in chunk]
        inputs = self._process(texts, images, padding_side="right")
        out = self.model(**inputs, use_cache=False, logits_to_keep=_score_positions(inputs))
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
        products = self._bounded(products)
        openings = answer_openings(scores, len(products))
        answers: list[GeneratedAnswer] = []
        for chunk in chunks(list(zip(products, openings, strict=True)), self.batch_size):
            texts = [self._prompt_text(query, p.text) + opening for p, opening in chunk]
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
        for chunk, batch in self._answer_batches(rows):
            new_tokens = batch.generate(self, max_new_tokens, min_new_tokens)
            openings = [row.suffix for row in batch.rows]
            decoded |= dict(zip(chunk, self._answers(new_tokens, openings), strict=True))
        answers: list[list[GeneratedAnswer]] = [[] for _ in jobs]
        for i, row in enumerate(rows):
            answers[row.job].append(decoded[i])
        return answers

    def _answer_batches(self, rows: list[_Row]) -> Iterator[tuple[list[int], _Decodable]]:
        """Batches of `batch_size` answers (with the indices of their rows), built one at a
        time: first the rows that continue a kept scoring pass, then the others."""
        scored = [self._scored_row(row) for row in rows]
        continued = [i for i, found in enumerate(scored) if found is not None]
        fresh = [i for i, found in enumerate(scored) if found is None]
        for chunk in chunks(continued, self.batch_size):
            found = [scored[i] for i in chunk]
            yield chunk, _ContinuedBatch.build(self, [rows[i] for i in chunk], found)
        for chunk in chunks(fresh, self.batch_size):
            yield chunk, _Batch.build(self, [rows[i] for i in chunk], padding_side="left")

    def _scored_row(self, row: _Row) -> _Scored | None:
        """The scoring pass's kept continuation of a row whose answer opens with its known
        score: the answer then continues on it (its product image and text are already in
        the cache) instead of running them again."""
        if not row.suffix:
            return None
        prompt = row.text[: len(row.text) - len(row.suffix)]
        return row.prefix.scored.get(_scored_key(prompt + SCORE_PROBE, row.product))

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
        inputs = self._process(texts, [[room, p.image] for p in chunk], padding_side="left")
        out = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
        )
        return out[:, inputs["input_ids"].shape[1] :]

    # ---- token budget -----------------------------------------------------------------------

    def token_budget(
        self, room: Image.Image, query: str, products: Sequence[ProductView]
    ) -> TokenBudget:
        """Tokens one query costs the language model: the shared room prefix, and per candidate
        its product image, its text (up to the forced score opening) and one answer's prompt."""
        products = self._bounded(products)
        texts = [self._prompt_text(query, p.text) for p in products]
        prefix = _prefix_text(texts[0])
        prefix_tokens = self._process([prefix], [[room]], padding_side="right")["input_ids"]
        cont = self._process(
            [text[len(prefix) :] + SCORE_PROBE for text in texts],
            [[p.image] for p in products],
            padding_side="right",
        )
        merge = self.processor.image_processor.merge_size**2
        image_tokens = (cont["image_grid_thw"].prod(-1) / merge).float().mean().item()
        per_candidate = cont["attention_mask"].sum(-1).float().mean().item()
        tokenizer = self.processor.tokenizer
        probe = len(tokenizer.encode(SCORE_PROBE, add_special_tokens=False))
        opening = len(tokenizer.encode(answer_opening(0.5), add_special_tokens=False))
        return TokenBudget(
            room_prefix=prefix_tokens.shape[1],
            product_image=image_tokens,
            product_text=per_candidate - image_tokens - probe,
            answer_prefix=probe,
            answer=self.max_new_tokens,
            opening=opening,
        )

    # ---- shared -----------------------------------------------------------------------------

    def _prompt_text(self, query: str, product_text: str) -> str:
        return self.processor.apply_chat_template(
            prompt_messages(query, product_text), add_generation_prompt=True
        )

    def _process(
        self, texts: list[str], images: list[list[Image.Image]], *, padding_side: str
    ) -> dict[str, torch.Tensor]:
        inputs = self.processor(
            text=texts, images=images, padding=True, padding_side=padding_side, return_tensors="pt"
        )
        return dict(inputs.to(self.device))


@dataclass
class _RoomPrefix:
    """The encoded system text, room image, query and instruction, shared by every candidate
    of one query."""

    text: str
    inputs: dict[str, torch.Tensor]
    kv: KV
    # The latest scoring pass's continuations on this prefix (see `_scored_key`).
    scored: dict[tuple[str, str], _Scored] = field(default_factory=dict)

    @classmethod
    def encode(cls, scorer: AgentScorer, room: Image.Image, text: str) -> _RoomPrefix:
        """Run the prefix (up to the product image) once and keep its KV cache."""
        inputs = scorer._process([text], [[room]], padding_side="right")
        positions, _ = _rope_core(scorer.model).get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
        )
        out = scorer.model(
            input_ids=inputs["input_ids"],
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        kv = [(keys, values) for keys, values, *_ in out.cache]
        return cls(text=text, inputs=inputs, kv=kv)

    @property
    def length(self) -> int:
        return self.inputs["input_ids"].shape[1]


class _Row(NamedTuple):
    """One candidate of one job (query), ready to join a batch."""

    job: int  # index of its query in the jobs asked
    prefix: _RoomPrefix
    text: str  # the whole prompt, ending with `suffix`
    product: ProductView  # its image within `product_max_pixels`
    suffix: str  # what the answer opens with (the score probe, a known score, or nothing)


@dataclass
class _Decodable:
    """A batch of prompts whose starts are in a KV cache: what both batch kinds decode from.

    `prompt_inputs` is what the first forward feeds beyond the cache; each row's next token
    is read at the last position (shorter rows are left-padded, the padding masked out).
    """

    rows: list[_Row]
    attention_mask: torch.Tensor  # everything in the cache and the prompt inputs
    positions: torch.Tensor  # (3, rows, prompt input length): M-RoPE positions
    next_position: torch.Tensor  # (rows,): the position of each row's first new token
    cache: DynamicCache

    def prompt_inputs(self, scorer: AgentScorer) -> dict[str, Any]:
        raise NotImplementedError

    def generate(
        self, scorer: AgentScorer, max_new_tokens: int, min_new_tokens: int
    ) -> torch.Tensor:
        """Greedy new tokens of every row, one decode step per token on the cache. Rows that
        ended (an EOS token) continue with the pad token, as HF `generate` does."""
        rows = self.attention_mask.shape[0]
        config = scorer.model.generation_config
        eos = torch.tensor(_as_list(config.eos_token_id), device=scorer.device)
        pad = config.pad_token_id if config.pad_token_id is not None else int(eos[0])
        mask = self.attention_mask
        out = scorer.model(
            **self.prompt_inputs(scorer),
            attention_mask=mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        done = torch.zeros(rows, dtype=torch.bool, device=scorer.device)
        tokens = []
        for step in range(max_new_tokens):
            logits = out.logits[:, -1].float()
            if step < min_new_tokens:
                logits[:, eos] = float("-inf")
            token = logits.argmax(-1).masked_fill(done, pad)
            tokens.append(token)
            done |= torch.isin(token, eos)
            if done.all() or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
            out = scorer.model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=(self.next_position + step).view(1, rows, 1).expand(3, -1, -1),
                cache=out.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return torch.stack(tokens, dim=1)


@dataclass
class _Batch(_Decodable):
    """Continuations (product image + text) on room prefixes, as one batch for the model.

    Rows of one query share one prefix (its KV cache expanded along the batch, no copy);
    rows of different queries (concurrent users) have their prefixes left-padded to the
    longest, the padding masked out. M-RoPE positions come from `get_rope_index` on the
    whole sequences (holes in the mask are skipped) and are sliced to the continuations.
    """

    cont: dict[str, torch.Tensor]  # attention_mask: prefixes + continuations
    images: list[Image.Image]

    @classmethod
    def build(
        cls,
        scorer: AgentScorer,
        rows: list[_Row],
        *,
        padding_side: str,
    ) -> _Batch:
        if any(not row.text.startswith(row.prefix.text) for row in rows):
            raise RuntimeError(
                "prompt template changed: candidates no longer share the room prefix"
            )
        prefixes = [row.prefix for row in rows]
        cont = scorer._process(
            [row.text[len(row.prefix.text) :] for row in rows],
            [[row.product.image] for row in rows],
            padding_side=padding_side,
        )
        length = max(prefix.length for prefix in prefixes)
        pads = {
            "input_ids": scorer.processor.tokenizer.pad_token_id,
            "mm_token_type_ids": 0,
            "attention_mask": 0,
        }
        joined = {
            key: torch.cat(
                [torch.cat([_left_pad(p.inputs[key], length, pad) for p in prefixes]), cont[key]],
                dim=1,
            )
            for key, pad in pads.items()
        }
        joined["image_grid_thw"] = torch.cat(
            [
                torch.cat([prefix.inputs["image_grid_thw"], grid[None]])
                for prefix, grid in zip(prefixes, cont["image_grid_thw"], strict=True)
            ]
        )
        positions, _ = _rope_core(scorer.model).get_rope_index(
            joined["input_ids"],
            mm_token_type_ids=joined["mm_token_type_ids"],
            image_grid_thw=joined["image_grid_thw"],
            attention_mask=joined["attention_mask"],
        )
        return cls(
            cont=cont,
            attention_mask=joined["attention_mask"],
            positions=positions[:, :, length:],
            next_position=positions.amax(dim=(0, 2)) + 1,
            cache=DynamicCache(
                ddp_cache_data=_joint_kv(prefixes, length), config=scorer.model.config
            ),
            images=[row.product.image for row in rows],
            rows=rows,
        )

    def score_logits(self, scorer: AgentScorer) -> torch.Tensor:
        """Logits at the two score positions of each (right-padded) continuation; each row's
        continuation stays on its prefix (`_RoomPrefix.scored`) for the answer that may
        follow its score."""
        out = scorer.model(
            input_ids=self.cont["input_ids"],
            attention_mask=self.attention_mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=_score_positions(self.cont),
            **scorer._vision_inputs(self.cont, self.images),
        )
        self._keep_continuations(out.cache)
        return out.logits

    def _keep_continuations(self, cache: DynamicCache) -> None:
        """Copy each row's own continuation (its real tokens, not the padding) out of the
        batch's cache: about as much memory as the batch's forward held, per scored row."""
        start = self.attention_mask.shape[1] - self.cont["input_ids"].shape[1]
        lengths = self.cont["attention_mask"].sum(-1).tolist()
        layers = [(keys, values) for keys, values, *_ in cache]
        for i, (row, n) in enumerate(zip(self.rows, lengths, strict=True)):
            kv = [
                tuple(part[i : i + 1, :, start : start + n].clone() for part in layer)
                for layer in layers
            ]
            row.prefix.scored[_scored_key(row.text, row.product)] = _Scored(
                kv, int(self.next_position[i])
            )

    def prompt_inputs(self, scorer: AgentScorer) -> dict[str, Any]:
        """The continuations, left-padded for answers (the padding sits between prefix and
        continuation, masked out), with their product images' vision inputs."""
        return {
            "input_ids": self.cont["input_ids"],
            **scorer._vision_inputs(self.cont, self.images),
        }


@dataclass(frozen=True)
class _Scored:
    """A scored row's continuation (product image, text, `{"score": 0.`) as the scoring pass
    left it in the KV cache."""

    kv: KV  # (1, heads, tokens, dim) each
    next_position: int  # the M-RoPE position after its last token

    @property
    def length(self) -> int:
        return self.kv[0][0].shape[2]


@dataclass
class _ContinuedBatch(_Decodable):
    """Answers opened with known scores that continue their rows' scoring passes: prefix and
    continuation come from the caches, the probe's tokens an opening does not share (the
    `0.` of a `1.0`) are cut off, and only the rest of the opening is run before decoding.

    Layout per row: prefix (left-padded to the longest), continuation (left-padded), rest of
    the opening (left-padded); the padding is masked out and positions are each row's own.
    """

    rest: torch.Tensor  # (rows, longest rest): the openings' tokens after the kept probe

    @classmethod
    def build(cls, scorer: AgentScorer, rows: list[_Row], scored: list[_Scored]) -> _ContinuedBatch:
        tokenizer = scorer.processor.tokenizer
        probe = tokenizer.encode(SCORE_PROBE, add_special_tokens=False)
        openings = [tokenizer.encode(row.suffix, add_special_tokens=False) for row in rows]
        cuts = [len(probe) - _shared_length(probe, opening) for opening in openings]
        rests = [opening[len(probe) - cut :] for opening, cut in zip(openings, cuts, strict=True)]
        kept = [s.length - cut for s, cut in zip(scored, cuts, strict=True)]
        prefixes = [row.prefix for row in rows]
        length, longest, widest = max(p.length for p in prefixes), max(kept), max(map(len, rests))
        kept_kv = [
            [tuple(part[:, :, :n] for part in layer) for layer in s.kv]
            for s, n in zip(scored, kept, strict=True)
        ]
        layers = [
            tuple(torch.cat(parts, dim=2) for parts in zip(prefix, continuation, strict=True))
            for prefix, continuation in zip(
                _joint_kv(prefixes, length), _stacked_kv(kept_kv, longest), strict=True
            )
        ]
        pad = tokenizer.pad_token_id
        mask = torch.cat(
            [
                torch.cat([_left_pad(p.inputs["attention_mask"], length, 0) for p in prefixes]),
                _ones_right(kept, longest),
                _ones_right(list(map(len, rests)), widest),
            ],
            dim=1,
        ).to(scorer.device)
        starts = torch.tensor([s.next_position - cut for s, cut in zip(scored, cuts, strict=True)])
        steps = torch.arange(widest) - widest + torch.tensor(list(map(len, rests)))[:, None]
        positions = (starts[:, None] + steps.clamp(min=0)).to(scorer.device)
        return cls(
            rest=torch.tensor([[pad] * (widest - len(r)) + r for r in rests], device=scorer.device),
            attention_mask=mask,
            positions=positions[None].expand(3, -1, -1),
            next_position=(starts + torch.tensor(list(map(len, rests)))).to(scorer.device),
            cache=DynamicCache(ddp_cache_data=layers, config=scorer.model.config),
            rows=rows,
        )

    def prompt_inputs(self, scorer: AgentScorer) -> dict[str, Any]:
        return {"input_ids": self.rest}


def answer_openings(scores: Sequence[float] | None, n: int) -> list[str]:
    """What each of `n` answers opens with: its known score written out, or nothing."""
    if scores is None:
        return [""] * n
    if len(scores) != n:
        raise ValueError(f"{len(scores)} scores for {n} products")
    return [answer_opening(score) for score in scores]


def _left_pad(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (length - tensor.shape[-1], 0), value=value)


def _joint_kv(prefixes: list[_RoomPrefix], length: int) -> KV:
    """The rows' prefix KV caches as one batch, per layer: one query's expanded (a view, no
    copy until appended), several queries' left-padded with zeros (masked out) and stacked."""
    rows = len(prefixes)
    if all(prefix is prefixes[0] for prefix in prefixes):
        return [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefixes[0].kv]
    return _stacked_kv([prefix.kv for prefix in prefixes], length)


def _stacked_kv(rows: list[KV], length: int) -> KV:
    """Per-row KV caches (batch 1 each) as one batch, per layer: each left-padded with zeros
    to `length` tokens (masked out) and stacked along the batch."""
    return [
        tuple(
            torch.cat([_left_pad_tokens(part, length) for part in parts])
            for parts in zip(*layer, strict=True)
        )
        for layer in zip(*rows, strict=True)
    ]


def _scored_key(text: str, product: ProductView) -> tuple[str, str]:
    """Which scoring pass a prompt's answer may continue: its text and its product image
    (products of one catalogue often share a name and attributes, never their photo)."""
    return text, image_digest(product.image)


def _left_pad_tokens(kv: torch.Tensor, length: int) -> torch.Tensor:
    """Keys or values (batch, heads, tokens, dim) left-padded with zeros to `length` tokens."""
    return torch.nn.functional.pad(kv, (0, 0, length - kv.shape[2], 0))


def _ones_right(lengths: list[int], width: int) -> torch.Tensor:
    """An attention mask of `width` columns with each row's `lengths[i]` ones at the right."""
    return torch.tensor([[0] * (width - n) + [1] * n for n in lengths])


def _shared_length(a: list[int], b: list[int]) -> int:
    """How many leading tokens two token lists share."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return shared


def bound_product_image(
    image: Image.Image, image_processor: Any, max_pixels: int | None
) -> Image.Image:
    """The product image at most `max_pixels` in area (`student.product_max_pixels`), on the
    processor's patch grid, so the processor leaves it as it is and its visual tokens can be
    cached by content. SFT shows the student its product images the same way."""
    if max_pixels is None:
        return image
    factor = image_processor.patch_size * image_processor.merge_size
    return bound_image(image, factor, image_processor.size["shortest_edge"], max_pixels)


def bound_image(image: Image.Image, factor: int, min_pixels: int, max_pixels: int) -> Image.Image:
    """The image resized as Qwen-VL's processor would (sides multiples of `factor`, area
    within the bounds), or the image itself when it already is.

    The processor keeps each side at least one grid step, so a very elongated photo (a rug
    runner) can come out over `max_pixels`; its long side is then cut back to fit the bound.
    """
    height, width = smart_resize(
        image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    if height * width > max_pixels:
        short, long = sorted((height, width))
        long = max(factor, max_pixels // short // factor * factor)
        height, width = (short, long) if height == short else (long, short)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def _prefix_text(full_text: str) -> str:
    """A prompt's shared part: everything before the product image (system text, room image,
    query and instruction). User and catalogue text never hold vision markers (the prompt
    strips them), so the last one is the product image's."""
    return full_text[: full_text.rindex(VISION_START)]


def _as_list(ids: int | list[int] | None) -> list[int]:
    if ids is None:
        raise ValueError("the model's generation config names no eos_token_id")
    return [ids] if isinstance(ids, int) else list(ids)


def _score_positions(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-row positions of the first-digit and tenths predictions in right-padded inputs:
    the token before the `0.` of `SCORE_PROBE` and its final `.`."""
    last = inputs["attention_mask"].sum(-1) - 1
    return torch.stack([last - 2, last], dim=1)


def _score_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids of digits `0`/`1` (first digit) and `0`..`9` (tenths).

    Checks that the tokenizer writes the score as the fast path reads it: each digit one
    token and `SCORE_PROBE` ending in the tokens `0`, `.` right after `ANSWER_PREFIX`.
    """
    digits = [tokenizer.encode(str(d), add_special_tokens=False) for d in range(10)]
    if any(len(ids) != 1 for ids in digits):
        raise ValueError(
            "the tokenizer does not encode each digit as one token; fast score needs it"
        )
    digit_ids = [ids[0] for ids in digits]
    prefix = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
    probe = tokenizer.encode(SCORE_PROBE, add_special_tokens=False)
    dot = tokenizer.encode(".", add_special_tokens=False)
    if probe != [*prefix, digit_ids[0], *dot] or len(dot) != 1:
        raise ValueError(f"the tokenizer splits {SCORE_PROBE!r} unlike the fast score expects")
    return digit_ids[:2], digit_ids


def _rope_core(model: Any) -> Any:
    """The inner Qwen2-VL model holding `get_rope_index` (under a PEFT wrapper if any)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of `size` items (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
