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

The room image is the same for every candidate of a query and comes first in the prompt, so
the system text + room image is one prefix: with `reuse_room_prefix` it is encoded once and its
KV cache is expanded along the batch for every batch of candidates. Qwen2-VL's M-RoPE positions
depend on image grids, so the positions of the whole sequence come from `get_rope_index` on
prefix + continuation and are sliced; continuations are right-padded and the logits are read
at each row's own last positions (`logits_to_keep` with per-row indices).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import DynamicCache

from mars_core.agent.adapter import apply_adapter, is_whole_model, resolve_adapter, serving_adapter
from mars_core.agent.expected_score import expected_scores
from mars_core.agent.prompt import (
    ANSWER_PREFIX,
    Answer,
    prompt_messages,
    try_parse_answer,
)
from mars_core.config import StudentConfig
from mars_core.models.loading import load_vlm

# The fast path's forced answer opening; its last two tokens are the digit `0` and `.`.
SCORE_PROBE = ANSWER_PREFIX + "0."
ROOM_END = "<|vision_end|>"


@dataclass(frozen=True)
class ProductView:
    """A candidate as the agent sees it: its image and `prompt.product_text(row)`."""

    image: Image.Image
    text: str


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
    ) -> None:
        """Wrap a loaded model; the knobs are `student.*` (see `from_config`)."""
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.reuse_room_prefix = reuse_room_prefix
        self.adapter = adapter  # the trained weights on the base (folder or model URI), if any
        self.device = next(model.parameters()).device
        self._first_digit_ids, self._digit_ids = _score_token_ids(processor.tokenizer)

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
        )

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
        texts = [self._prompt_text(query, p.text) + SCORE_PROBE for p in products]
        scores: list[float] = []
        if reuse:
            prefix = _RoomPrefix.encode(self, room, texts[0])
            for chunk in _chunks(list(zip(texts, products, strict=True)), self.batch_size):
                scores += self._read_scores(prefix.forward(self, chunk))
        else:
            for chunk in _chunks(list(zip(texts, products, strict=True)), self.batch_size):
                scores += self._read_scores(self._forward_full(room, chunk))
        return scores

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
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
    ) -> list[GeneratedAnswer]:
        """Greedy answer JSON per product, in batches (left-padded for generation)."""
        answers: list[GeneratedAnswer] = []
        for chunk in _chunks(list(products), self.batch_size):
            texts = [self._prompt_text(query, p.text) for p in chunk]
            inputs = self._process(texts, [[room, p.image] for p in chunk], padding_side="left")
            out = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                min_new_tokens=min_new_tokens,
            )
            new_tokens = out[:, inputs["input_ids"].shape[1] :]
            for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True):
                answers.append(GeneratedAnswer(text=text, answer=try_parse_answer(text)))
        return answers

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
    """The encoded system text + room image, shared by every candidate of one query."""

    text: str
    inputs: dict[str, torch.Tensor]
    kv: list[tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def encode(cls, scorer: AgentScorer, room: Image.Image, full_text: str) -> _RoomPrefix:
        """Run the prefix (up to the end of the room image) once and keep its KV cache."""
        text = full_text[: full_text.index(ROOM_END) + len(ROOM_END)]
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

    def forward(self, scorer: AgentScorer, chunk: list[tuple[str, ProductView]]) -> torch.Tensor:
        """Logits at the two score positions of each continuation, on the shared prefix."""
        if any(not text.startswith(self.text) for text, _ in chunk):
            raise RuntimeError(
                "prompt template changed: candidates no longer share the room prefix"
            )
        texts = [text[len(self.text) :] for text, _ in chunk]
        cont = scorer._process(texts, [[p.image] for _, p in chunk], padding_side="right")
        rows = len(chunk)
        full = self._join(cont, rows)
        positions, _ = _rope_core(scorer.model).get_rope_index(
            full["input_ids"],
            mm_token_type_ids=full["mm_token_type_ids"],
            image_grid_thw=full["image_grid_thw"],
            attention_mask=full["attention_mask"],
        )
        prefix_len = self.inputs["input_ids"].shape[1]
        cache = DynamicCache(
            ddp_cache_data=[
                (k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.kv
            ],
            config=scorer.model.config,
        )
        out = scorer.model(
            input_ids=cont["input_ids"],
            attention_mask=full["attention_mask"],
            pixel_values=cont["pixel_values"],
            image_grid_thw=cont["image_grid_thw"],
            position_ids=positions[:, :, prefix_len:],
            cache=cache,
            use_cache=True,
            logits_to_keep=_score_positions(cont),
        )
        return out.logits

    def _join(self, cont: dict[str, torch.Tensor], rows: int) -> dict[str, torch.Tensor]:
        """Prefix + continuation as whole sequences, for M-RoPE positions and the mask."""
        joined = {
            key: torch.cat([self.inputs[key].expand(rows, -1), cont[key]], dim=1)
            for key in ("input_ids", "mm_token_type_ids", "attention_mask")
        }
        room_grid = self.inputs["image_grid_thw"]
        joined["image_grid_thw"] = torch.cat(
            [torch.cat([room_grid, grid[None]]) for grid in cont["image_grid_thw"]]
        )
        return joined


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


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
