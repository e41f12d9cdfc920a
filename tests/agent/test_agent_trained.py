"""On a briefly trained tiny student, the fast score ranks like the generated answer's score.

The fixture fully fine-tunes the tiny Qwen2-VL (all weights, AdamW lr 1e-3: the recipe that
lets a random tiny student learn; LoRA on a random base barely does) on coloured squares whose
fit score is known: each product colour has a grade from 0.0 to 1.0 (1.0 included, to exercise
the `1.` branch of the fast score); the room colours vary as distractors. Within a one-core
minute the student learns the colour→grade mapping; room/product *relations* take far longer to
learn from random weights, and this test only needs confident, varied answers to compare the
two ways of reading them."""

from __future__ import annotations

import colorsys
import math
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from mars_core.agent.scorer import AgentScorer
from mars_core.agent.stage import AgentStage
from mars_core.agent.types import ProductView
from mars_core.funnel.stages import AGENT
from mars_core.models.loading import load_vlm
from mars_core.prompt import answer_text, product_text, prompt_messages
from mars_core.search.types import Candidate, SearchRequest

pytestmark = pytest.mark.slow

HUES = 6
GRADES = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]  # product hue index -> known fit score
QUERY = "decor"
PRODUCT = {"name": "a square", "category": "DECOR"}
PRODUCT_TEXT = product_text(PRODUCT)
MAX_STEPS, TARGET_LOSS, BATCH = 400, 0.02, 8


def square(hue: int) -> Image.Image:
    """A 56x56 square (4 image tokens at the tiny processor's sizes) of one of HUES colours."""
    r, g, b = colorsys.hsv_to_rgb(hue / HUES, 0.9, 0.9)
    return Image.new("RGB", (56, 56), (int(r * 255), int(g * 255), int(b * 255)))


def rationale(score: float) -> str:
    if score >= 0.8:
        return "the colour matches the room"
    return "the colour suits the room" if score >= 0.4 else "the colour clashes with the room"


def _training_sample(processor, room: int, product: int) -> dict[str, torch.Tensor]:
    """Prompt + answer from the one prompt template; loss on the answer tokens only."""
    prompt = processor.apply_chat_template(
        prompt_messages(QUERY, PRODUCT_TEXT), add_generation_prompt=True
    )
    score = GRADES[product]
    full = prompt + answer_text(score, rationale(score)) + "<|im_end|>\n"
    images = [square(room), square(product)]
    prompt_len = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1]
    sample = dict(processor(text=[full], images=images, return_tensors="pt"))
    sample["labels"] = sample["input_ids"].clone()
    sample["labels"][:, :prompt_len] = -100
    return sample


def _collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    length = max(s["input_ids"].shape[1] for s in samples)
    pad = {"input_ids": 0, "attention_mask": 0, "mm_token_type_ids": 0, "labels": -100}
    batch = {
        key: torch.cat(
            [
                torch.nn.functional.pad(s[key], (0, length - s[key].shape[1]), value=v)
                for s in samples
            ]
        )
        for key, v in pad.items()
    }
    for key in ("pixel_values", "image_grid_thw"):
        batch[key] = torch.cat([s[key] for s in samples])
    return batch


@pytest.fixture(scope="module")
def trained(cfg, model_cache) -> AgentScorer:
    """Full fine-tuning until the answer loss is near zero (judged by loss, not steps)."""
    torch.manual_seed(0)
    rng = random.Random(0)
    loaded = load_vlm(cfg.student, model_cache)
    model, processor = loaded.model.train(), loaded.processor
    samples = [_training_sample(processor, r, p) for r in range(HUES) for p in range(HUES)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 20))
    smoothed = math.inf
    for step in range(MAX_STEPS):
        loss = model(**_collate(rng.sample(samples, BATCH))).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        warmup.step()
        smoothed = loss.item() if step == 0 else 0.9 * smoothed + 0.1 * loss.item()
        if smoothed < TARGET_LOSS:
            break
    print(f"\ntrained tiny student: {step + 1} steps, smoothed answer loss {smoothed:.4f}")
    model.eval()
    return AgentScorer(
        model,
        processor,
        batch_size=8,
        max_new_tokens=cfg.student.max_new_tokens,
        reuse_room_prefix=True,
    )


def _spearman(a: list[float], b: list[float]) -> float:
    ranks = pd.DataFrame({"a": a, "b": b}).rank()
    return float(ranks["a"].corr(ranks["b"]))


def test_fast_score_ranks_like_the_generated_answer(trained, record_property):
    fast, generated, truth = [], [], []
    for room in range(HUES):
        products = [ProductView(square(p), PRODUCT_TEXT) for p in range(HUES)]
        fast += trained.score(square(room), QUERY, products)
        answers = trained.generate(square(room), QUERY, products)
        assert all(a.answer is not None for a in answers), [a.text for a in answers]
        generated += [a.answer.score for a in answers]
        truth += GRADES
    rho = _spearman(fast, generated)
    record_property("spearman_fast_vs_generated", rho)
    print(
        f"Spearman fast vs generated {rho:.3f}; fast vs truth {_spearman(fast, truth):.3f}; "
        f"generated vs truth {_spearman(generated, truth):.3f} (36 pairs)"
    )
    # A fast score read at the wrong positions or over the wrong tokens is flat or noisy here.
    assert rho >= 0.9
    assert max(abs(f - g) for f, g in zip(fast, generated, strict=True)) < 0.25


def test_agent_stage_attaches_the_generated_rationales(trained, tmp_path: Path):
    candidates = []
    for hue in range(HUES):
        path = tmp_path / f"square{hue}.png"
        square(hue).save(path)
        product = {**PRODUCT, "image_path": str(path)}
        candidates.append(Candidate(key=f"sq{hue}@x", product=product))
    stage = AgentStage(name=AGENT, scorer=trained, rationale_top_n=2, max_image_pixels=10**6)
    out = stage.rank(SearchRequest(room=square(3), query=QUERY), candidates, k=4)
    assert [c.key for c in out.candidates[:2]] == ["sq0@x", "sq1@x"]  # grades 1.0 and 0.8
    assert [c.rationale for c in out.candidates[:2]] == [rationale(1.0), rationale(0.8)]
    assert all(c.rationale is None for c in out.candidates[2:])
    assert out.details["malformed_rationales"] == 0
