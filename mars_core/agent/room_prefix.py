"""The room prefix: what a query's candidates share (system text, room image, query and
instruction), encoded once per query, with the scoring passes that ran on it.

A prefix is keyed by its room's pixels and its text; the latest ones are kept
(`RoomPrefixes`), so the top-N answers that follow a query's scores reuse its prefix and
continue the scoring passes kept on it (`kv_batch.py` batches and decodes on them).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
from PIL import Image

from mars_core.agent.types import ProductView
from mars_core.agent.vision import image_digest

# Opens each image in the prompt text; the last one opens the candidate's product image.
VISION_START = "<|vision_start|>"

# A KV cache as plain tensors: per layer (keys, values), each (batch, heads, tokens, dim).
KV = list[tuple[torch.Tensor, ...]]


class Agent(Protocol):
    """What prefixes and batches use of the in-process agent (`scorer.AgentScorer`, which
    they never import): its model, processor and device, its prompts turned into model
    inputs, and its product images' vision inputs (cached visual tokens where it has them)."""

    model: Any
    processor: Any
    device: torch.device

    def process(
        self, texts: list[str], images: list[list[Image.Image]], *, padding_side: str
    ) -> dict[str, torch.Tensor]: ...

    def vision_inputs(
        self, inputs: dict[str, torch.Tensor], images: list[Image.Image]
    ) -> dict[str, Any]: ...


@dataclass
class RoomPrefix:
    """The encoded system text, room image, query and instruction, shared by every candidate
    of one query."""

    text: str
    inputs: dict[str, torch.Tensor]
    kv: KV
    # The latest scoring pass's continuations on this prefix (see `scored_key`).
    scored: dict[tuple[str, str], Scored] = field(default_factory=dict)

    @classmethod
    def encode(cls, agent: Agent, room: Image.Image, text: str) -> RoomPrefix:
        """Run the prefix (up to the product image) once and keep its KV cache."""
        inputs = agent.process([text], [[room]], padding_side="right")
        positions, _ = inner_model(agent.model).get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
        )
        out = agent.model(
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


class Row(NamedTuple):
    """One candidate of one job (query), ready to join a batch."""

    job: int  # index of its query in the jobs asked
    prefix: RoomPrefix
    text: str  # the whole prompt, ending with `suffix`
    product: ProductView  # its image within `product_max_pixels`
    suffix: str  # what the answer opens with (the score probe, a known score, or nothing)


@dataclass(frozen=True)
class Scored:
    """A scored row's continuation (product image, text, `{"score": 0.`) as the scoring pass
    left it in the KV cache."""

    kv: KV  # (1, heads, tokens, dim) each
    next_position: int  # the M-RoPE position after its last token

    @property
    def length(self) -> int:
        return self.kv[0][0].shape[2]


class RoomPrefixes:
    """The encoded room prefixes of the latest queries (scores, then the answers of the same
    query reuse them); at most `keep` rooms are kept, the least recently used go first."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._kept: OrderedDict[tuple[str, str], RoomPrefix] = OrderedDict()

    def get(self, agent: Agent, room: Image.Image, full_text: str) -> RoomPrefix:
        """The query's encoded room prefix: a kept one when room and text match, else a new
        one (`full_text` is a candidate's whole prompt)."""
        key = (image_digest(room), prefix_text(full_text))
        prefix = self._kept.get(key)
        if prefix is None:
            prefix = self._kept[key] = RoomPrefix.encode(agent, room, key[1])
            while len(self._kept) > self.keep:
                self._kept.popitem(last=False)
        self._kept.move_to_end(key)
        return prefix

    def clear(self) -> None:
        self._kept.clear()

    def forget_scored(self) -> None:
        """Drop the kept scoring passes, not the prefixes."""
        for prefix in self._kept.values():
            prefix.scored.clear()


def scored_key(text: str, product: ProductView) -> tuple[str, str]:
    """Which scoring pass a prompt's answer may continue: its text and its product image
    (products of one catalogue often share a name and attributes, never their photo)."""
    return text, image_digest(product.image)


def prefix_text(full_text: str) -> str:
    """A prompt's shared part: everything before the product image (system text, room image,
    query and instruction). User and catalogue text never hold vision markers (the prompt
    strips them), so the last one is the product image's."""
    return full_text[: full_text.rindex(VISION_START)]


def inner_model(model: Any) -> Any:
    """The inner Qwen2-VL model holding `get_rope_index` (under a PEFT wrapper if any)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model
