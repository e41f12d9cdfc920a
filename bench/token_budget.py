"""The stage-3 bench's token budget: how many tokens one query costs the agent's language
model, part by part (the room prefix once, then per candidate and per answer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from mars_core.agent.room_prefix import prefix_text
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.types import SCORE_PROBE, ProductView
from mars_core.prompt import answer_opening


@dataclass(frozen=True)
class TokenBudget:
    """Tokens of one query (means over its candidates): see `token_budget`."""

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


def token_budget(
    scorer: AgentScorer, room: Image.Image, query: str, products: Sequence[ProductView]
) -> TokenBudget:
    """Tokens one query costs the language model: the shared room prefix, and per candidate
    its product image, its text (up to the forced score opening) and one answer's prompt."""
    products = scorer.bounded(products)
    texts = [scorer.prompt_text(query, p.text) for p in products]
    prefix = prefix_text(texts[0])
    prefix_tokens = scorer.process([prefix], [[room]], padding_side="right")["input_ids"]
    cont = scorer.process(
        [text[len(prefix) :] + SCORE_PROBE for text in texts],
        [[p.image] for p in products],
        padding_side="right",
    )
    merge = scorer.processor.image_processor.merge_size**2
    image_tokens = (cont["image_grid_thw"].prod(-1) / merge).float().mean().item()
    per_candidate = cont["attention_mask"].sum(-1).float().mean().item()
    tokenizer = scorer.processor.tokenizer
    probe = len(tokenizer.encode(SCORE_PROBE, add_special_tokens=False))
    opening = len(tokenizer.encode(answer_opening(0.5), add_special_tokens=False))
    return TokenBudget(
        room_prefix=prefix_tokens.shape[1],
        product_image=image_tokens,
        product_text=per_candidate - image_tokens - probe,
        answer_prefix=probe,
        answer=scorer.max_new_tokens,
        opening=opening,
    )
