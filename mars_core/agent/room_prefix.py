"""The room prefix: what a query's candidates share (system text, room image, query and
instruction), encoded once per query, with the scoring passes that ran on it.

A prefix is keyed by its room's pixels and its text; the latest ones are kept
(`RoomPrefixes`), so the top-N answers that follow a query's scores reuse its prefix and
continue the scoring passes kept on it (`kv_batch.py` batches and decodes on them). The
prefixes a call lacks are encoded together, a batch to a forward pass, the room photo through
the vision tower once per pass. The many queries of one room (the categories asked about
beyond a query) share more: their system text and room image, the stem, most of a prefix's
tokens (a room's 256 visual tokens against a query's twenty-odd). The stem is encoded once
and every query's own words continue it in one batch (`RoomPrefix.encode_on_stem`): nine
categories cost about one prefix and nine short continuations, not nine prefixes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
from PIL import Image
from transformers import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mars_core.agent.types import ProductView
from mars_core.agent.vision import image_digest

# Opens each image in the prompt text; the last one opens the candidate's product image.
VISION_START = "<|vision_start|>"
# Closes each image; the first one closes the room image, where a prefix's stem ends.
VISION_END = "<|vision_end|>"

# A KV cache as plain tensors: per layer (keys, values), each (batch, heads, tokens, dim).
KV = list[tuple[torch.Tensor, ...]]
# A prefix's inputs with one entry per token (cut to its own length out of a padded batch).
TOKEN_INPUTS = ("input_ids", "mm_token_type_ids", "attention_mask")


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
    def encode(cls, agent: Agent, rooms: list[Image.Image], texts: list[str]) -> list[RoomPrefix]:
        """Run several prefixes (up to the product image) in one forward pass and keep each
        one's KV cache: right-padded, so each row's tokens see only its own earlier tokens,
        and the vision tower runs once per distinct room photo (the queries of one room,
        such as the categories asked about beyond a query, share it)."""
        inputs = agent.process(texts, [[room] for room in rooms], padding_side="right")
        positions, _ = inner_model(agent.model).get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
            attention_mask=inputs["attention_mask"],
        )
        out = agent.model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **_room_features(agent, inputs, rooms),
        )
        layers = [(keys, values) for keys, values, *_ in out.cache]
        pixels = inputs["pixel_values"].split(inputs["image_grid_thw"].prod(-1).tolist())
        prefixes = []
        for i, (text, length) in enumerate(
            zip(texts, inputs["attention_mask"].sum(-1).tolist(), strict=True)
        ):
            own = {key: inputs[key][i : i + 1, :length] for key in TOKEN_INPUTS}
            own["image_grid_thw"] = inputs["image_grid_thw"][i : i + 1]
            own["pixel_values"] = pixels[i]
            kv = [(k[i : i + 1, :, :length], v[i : i + 1, :, :length]) for k, v in layers]
            prefixes.append(cls(text=text, inputs=own, kv=kv))
        return prefixes

    @classmethod
    def encode_on_stem(cls, agent: Agent, room: Image.Image, texts: list[str]) -> list[RoomPrefix]:
        """Several prefixes of one room: the stem they share (system text and room image, up
        to the room image's end marker) in one forward pass, then every prefix's own words
        (query and instruction) on the stem's KV cache as one right-padded batch. The same
        tokens, positions and cache as `encode`, computed once for the stem."""
        cut = texts[0].index(VISION_END) + len(VISION_END)
        stem = agent.process([texts[0][:cut]], [[room]], padding_side="right")
        if any(text[:cut] != texts[0][:cut] for text in texts):
            raise RuntimeError("prompt template changed: a room's prefixes share no stem")
        tails, tail_ids, tail_mask = _tails(agent, [text[cut:] for text in texts])
        rows, length = len(texts), stem["input_ids"].shape[1]
        joined = {
            "input_ids": torch.cat([stem["input_ids"].expand(rows, -1), tail_ids], dim=1),
            "mm_token_type_ids": torch.cat(
                [stem["mm_token_type_ids"].expand(rows, -1), torch.zeros_like(tail_ids)], dim=1
            ),
            "attention_mask": torch.cat(
                [stem["attention_mask"].expand(rows, -1), tail_mask], dim=1
            ),
        }
        grid = stem["image_grid_thw"]
        positions, _ = inner_model(agent.model).get_rope_index(
            joined["input_ids"],
            mm_token_type_ids=joined["mm_token_type_ids"],
            image_grid_thw=grid.expand(rows, -1),
            attention_mask=joined["attention_mask"],
        )
        stem_out = agent.model(
            input_ids=stem["input_ids"],
            attention_mask=stem["attention_mask"],
            position_ids=positions[:, :1, :length],
            use_cache=True,
            logits_to_keep=1,
            **_room_features(agent, stem, [room]),
        )
        shared = [
            (k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v, *_ in stem_out.cache
        ]
        out = agent.model(
            input_ids=tail_ids,
            attention_mask=joined["attention_mask"],
            position_ids=positions[:, :, length:],
            cache=DynamicCache(ddp_cache_data=shared, config=agent.model.config),
            use_cache=True,
            logits_to_keep=1,
        )
        layers = [(keys, values) for keys, values, *_ in out.cache]
        prefixes = []
        for i, (text, tail) in enumerate(zip(texts, tails, strict=True)):
            end = length + len(tail)
            own = {key: joined[key][i : i + 1, :end] for key in TOKEN_INPUTS}
            own["image_grid_thw"], own["pixel_values"] = grid, stem["pixel_values"]
            kv = [(k[i : i + 1, :, :end], v[i : i + 1, :, :end]) for k, v in layers]
            prefixes.append(cls(text=text, inputs=own, kv=kv))
        return prefixes

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

    def get(self, agent: Agent, asks: list[tuple[Image.Image, str]]) -> list[RoomPrefix]:
        """Each (room, candidate's whole prompt) ask's encoded room prefix: a kept one when
        room and text match, else a new one; a room's new ones on their shared stem, the
        other rooms' new ones together, `keep` to a forward pass. Every prefix of the latest
        call stays kept (more than `keep` when it asked for more: the answers that follow its
        scores reuse them)."""
        keys = [(image_digest(room), prefix_text(text)) for room, text in asks]
        missing = {key: room for key, (room, _) in zip(keys, asks, strict=True)}
        by_room: dict[str, list[tuple[tuple[str, str], Image.Image]]] = {}
        for key, room in missing.items():
            if key not in self._kept:
                by_room.setdefault(key[0], []).append((key, room))
        alone = [found[0] for found in by_room.values() if len(found) == 1]
        for found in (found for found in by_room.values() if len(found) > 1):
            texts = [key[1] for key, _ in found]
            self._keep(found, RoomPrefix.encode_on_stem(agent, found[0][1], texts))
        for start in range(0, len(alone), self.keep):
            chunk = alone[start : start + self.keep]
            rooms, texts = [room for _, room in chunk], [key[1] for key, _ in chunk]
            self._keep(chunk, RoomPrefix.encode(agent, rooms, texts))
        for key in keys:
            self._kept.move_to_end(key)
        while len(self._kept) > max(self.keep, len(set(keys))):
            self._kept.popitem(last=False)
        return [self._kept[key] for key in keys]

    def _keep(
        self, asks: list[tuple[tuple[str, str], Image.Image]], found: list[RoomPrefix]
    ) -> None:
        for (key, _), prefix in zip(asks, found, strict=True):
            self._kept[key] = prefix

    def clear(self) -> None:
        self._kept.clear()

    def forget_scored(self) -> None:
        """Drop the kept scoring passes, not the prefixes."""
        for prefix in self._kept.values():
            prefix.scored.clear()


def _tails(agent: Agent, texts: list[str]) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Texts after a stem as tokens (no image in them: the tokenizer alone, which splits at
    the stem's closing special token as the processor does), right-padded into one batch with
    its attention mask."""
    tokenizer = agent.processor.tokenizer
    tails = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    width = max(map(len, tails))
    ids = [tail + [tokenizer.pad_token_id] * (width - len(tail)) for tail in tails]
    mask = [[1] * len(tail) + [0] * (width - len(tail)) for tail in tails]
    return tails, torch.tensor(ids, device=agent.device), torch.tensor(mask, device=agent.device)


def _room_features(
    agent: Agent, inputs: dict[str, torch.Tensor], rooms: list[Image.Image]
) -> dict[str, Any]:
    """The room photos' visual tokens for the model, the vision tower run once per distinct
    photo."""
    grid = inputs["image_grid_thw"]
    pixels = inputs["pixel_values"].split(grid.prod(-1).tolist())
    digests = [image_digest(room) for room in rooms]
    first = {digest: i for i, digest in reversed(list(enumerate(digests)))}
    unique = sorted(first.values())
    tower = inner_model(agent.model).get_image_features(
        torch.cat([pixels[i] for i in unique]), grid[unique], return_dict=True
    )
    computed = dict(zip((digests[i] for i in unique), tower.pooler_output, strict=True))
    features = tuple(computed[digest] for digest in digests)
    return {
        "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=features)},
        "image_grid_thw": grid,
    }


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
