"""Batched prefill and greedy decoding on shared KV caches: how the in-process agent runs a
query's candidates (`scorer.AgentScorer`).

What all candidates of a query share is one room prefix (`room_prefix.py`), encoded once; its
KV cache is expanded along the batch for every batch of candidates (`PrefixBatch`), so each
row runs only its continuation (product image, text and what the answer opens with). Qwen2-VL's
M-RoPE positions depend on image grids, so the positions of the whole sequence come from
`get_rope_index` on prefix + continuation and are sliced; continuations are right-padded for
scoring and the logits are read at each row's own last positions (`logits_to_keep` with
per-row indices). Rows of different queries (concurrent users) join one batch with their
prefixes left-padded, the padding masked out.

The top-N answers that follow the scores decode as one batch on the shared prefix
(continuations left-padded, a greedy loop over the cache, `Decodable.generate`). The scoring
pass keeps each candidate's own part of the KV cache (product image, text and
`{"score": 0.`) on its prefix, so an answer that opens with its known score continues that
pass (`ContinuedBatch`): only the rest of its opening (`7, "rationale": "`) runs before the
rationale is decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import DynamicCache

from mars_core.agent.room_prefix import (
    KV,
    Agent,
    RoomPrefix,
    Row,
    Scored,
    inner_model,
    scored_key,
)
from mars_core.agent.types import SCORE_PROBE
from mars_core.infra.batching import batched


def answer_batches(
    agent: Agent, rows: list[Row], batch_size: int
) -> Iterator[tuple[list[int], Decodable]]:
    """Batches of `batch_size` answers (with the indices of their rows), built one at a time:
    first the rows that continue a kept scoring pass, then the others."""
    scored = [_kept_pass(row) for row in rows]
    continued = [i for i, found in enumerate(scored) if found is not None]
    fresh = [i for i, found in enumerate(scored) if found is None]
    for chunk in batched(continued, batch_size):
        found = [scored[i] for i in chunk]
        yield chunk, ContinuedBatch.build(agent, [rows[i] for i in chunk], found)
    for chunk in batched(fresh, batch_size):
        yield chunk, PrefixBatch.build(agent, [rows[i] for i in chunk], padding_side="left")


def _kept_pass(row: Row) -> Scored | None:
    """The scoring pass's kept continuation of a row whose answer opens with its known
    score: the answer then continues on it (its product image and text are already in the
    cache) instead of running them again."""
    if not row.suffix:
        return None
    prompt = row.text[: len(row.text) - len(row.suffix)]
    return row.prefix.scored.get(scored_key(prompt + SCORE_PROBE, row.product))


@dataclass
class Decodable:
    """A batch of prompts whose starts are in a KV cache: what both batch kinds decode from.

    `prompt_inputs` is what the first forward feeds beyond the cache; each row's next token
    is read at the last position (shorter rows are left-padded, the padding masked out).
    """

    rows: list[Row]
    attention_mask: torch.Tensor  # everything in the cache and the prompt inputs
    positions: torch.Tensor  # (3, rows, prompt input length): M-RoPE positions
    next_position: torch.Tensor  # (rows,): the position of each row's first new token
    cache: DynamicCache

    def prompt_inputs(self, agent: Agent) -> dict[str, Any]:
        raise NotImplementedError

    def generate(self, agent: Agent, max_new_tokens: int, min_new_tokens: int) -> torch.Tensor:
        """Greedy new tokens of every row, one decode step per token on the cache. Rows that
        ended (an EOS token) continue with the pad token, as HF `generate` does."""
        rows = self.attention_mask.shape[0]
        config = agent.model.generation_config
        eos = torch.tensor(_as_list(config.eos_token_id), device=agent.device)
        pad = config.pad_token_id if config.pad_token_id is not None else int(eos[0])
        mask = self.attention_mask
        out = agent.model(
            **self.prompt_inputs(agent),
            attention_mask=mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        done = torch.zeros(rows, dtype=torch.bool, device=agent.device)
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
            out = agent.model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=(self.next_position + step).view(1, rows, 1).expand(3, -1, -1),
                cache=out.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return torch.stack(tokens, dim=1)


@dataclass
class PrefixBatch(Decodable):
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
        agent: Agent,
        rows: list[Row],
        *,
        padding_side: str,
    ) -> PrefixBatch:
        if any(not row.text.startswith(row.prefix.text) for row in rows):
            raise RuntimeError(
                "prompt template changed: candidates no longer share the room prefix"
            )
        prefixes = [row.prefix for row in rows]
        cont = agent.process(
            [row.text[len(row.prefix.text) :] for row in rows],
            [[row.product.image] for row in rows],
            padding_side=padding_side,
        )
        length = max(prefix.length for prefix in prefixes)
        pads = {
            "input_ids": agent.processor.tokenizer.pad_token_id,
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
        positions, _ = inner_model(agent.model).get_rope_index(
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
                ddp_cache_data=_joint_kv(prefixes, length), config=agent.model.config
            ),
            images=[row.product.image for row in rows],
            rows=rows,
        )

    def score_logits(self, agent: Agent) -> torch.Tensor:
        """Logits at the two score positions of each (right-padded) continuation; each row's
        continuation stays on its prefix (`RoomPrefix.scored`) for the answer that may
        follow its score."""
        out = agent.model(
            input_ids=self.cont["input_ids"],
            attention_mask=self.attention_mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=score_positions(self.cont),
            **agent.vision_inputs(self.cont, self.images),
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
            row.prefix.scored[scored_key(row.text, row.product)] = Scored(
                kv, int(self.next_position[i])
            )

    def prompt_inputs(self, agent: Agent) -> dict[str, Any]:
        """The continuations, left-padded for answers (the padding sits between prefix and
        continuation, masked out), with their product images' vision inputs."""
        return {
            "input_ids": self.cont["input_ids"],
            **agent.vision_inputs(self.cont, self.images),
        }


@dataclass
class ContinuedBatch(Decodable):
    """Answers opened with known scores that continue their rows' scoring passes: prefix and
    continuation come from the caches, the probe's tokens an opening does not share (the
    `0.` of a `1.0`) are cut off, and only the rest of the opening is run before decoding.

    Layout per row: prefix (left-padded to the longest), continuation (left-padded), rest of
    the opening (left-padded); the padding is masked out and positions are each row's own.
    """

    rest: torch.Tensor  # (rows, longest rest): the openings' tokens after the kept probe

    @classmethod
    def build(cls, agent: Agent, rows: list[Row], scored: list[Scored]) -> ContinuedBatch:
        tokenizer = agent.processor.tokenizer
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
        ).to(agent.device)
        starts = torch.tensor([s.next_position - cut for s, cut in zip(scored, cuts, strict=True)])
        steps = torch.arange(widest) - widest + torch.tensor(list(map(len, rests)))[:, None]
        positions = (starts[:, None] + steps.clamp(min=0)).to(agent.device)
        return cls(
            rest=torch.tensor([[pad] * (widest - len(r)) + r for r in rests], device=agent.device),
            attention_mask=mask,
            positions=positions[None].expand(3, -1, -1),
            next_position=(starts + torch.tensor(list(map(len, rests)))).to(agent.device),
            cache=DynamicCache(ddp_cache_data=layers, config=agent.model.config),
            rows=rows,
        )

    def prompt_inputs(self, agent: Agent) -> dict[str, Any]:
        return {"input_ids": self.rest}


def _left_pad(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (length - tensor.shape[-1], 0), value=value)


def _joint_kv(prefixes: list[RoomPrefix], length: int) -> KV:
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


def _as_list(ids: int | list[int] | None) -> list[int]:
    if ids is None:
        raise ValueError("the model's generation config names no eos_token_id")
    return [ids] if isinstance(ids, int) else list(ids)


def score_positions(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-row positions of the first-digit and tenths predictions in right-padded inputs:
    the token before the `0.` of `SCORE_PROBE` and its final `.`."""
    last = inputs["attention_mask"].sum(-1) - 1
    return torch.stack([last - 2, last], dim=1)
